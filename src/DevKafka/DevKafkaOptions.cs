using System.Globalization;

namespace TaggedMirror.DevKafka;

/// <summary>Command line of the devkafka process, parsed by hand to keep it dependency-free.</summary>
internal sealed record DevKafkaOptions(
    int Brokers,
    string BootstrapFile,
    int ControlPort,
    IReadOnlyList<(string Name, int Partitions)> Topics)
{
    internal const string Usage =
        "usage: TaggedMirror.DevKafka [--brokers N] [--bootstrap-file PATH] [--control-port N] [--topics t1:partitions,t2,...]\n" +
        "  --brokers          number of mock brokers, ids 1..N (default 3)\n" +
        "  --bootstrap-file   where the bootstrap servers are written (default .run/kafka.bootstrap);\n" +
        "                     the control port is written to PATH.control\n" +
        "  --control-port     loopback TCP port of the fault-injection channel (default 0 = any free port)\n" +
        "  --topics           topics to create at start, with partition counts (default 1 partition)";

    /// <summary>Parses <paramref name="args"/>; returns null with <paramref name="error"/> set when they are invalid.</summary>
    internal static DevKafkaOptions? Parse(IReadOnlyList<string> args, out string? error)
    {
        var brokers = 3;
        var bootstrapFile = Path.Combine(".run", "kafka.bootstrap");
        var controlPort = 0;
        var topics = new List<(string, int)>();
        error = null;

        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            if (name is "-h" or "--help")
            {
                error = string.Empty;
                return null;
            }

            if (i + 1 >= args.Count)
            {
                error = $"missing value for {name}";
                return null;
            }

            var value = args[++i];
            switch (name)
            {
                case "--brokers":
                    if (!TryParsePositive(value, out brokers))
                    {
                        error = $"--brokers must be a positive integer, got '{value}'";
                        return null;
                    }

                    break;
                case "--bootstrap-file":
                    bootstrapFile = value;
                    break;
                case "--control-port":
                    if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out controlPort) || controlPort > 65535)
                    {
                        error = $"--control-port must be 0..65535, got '{value}'";
                        return null;
                    }

                    break;
                case "--topics":
                    foreach (var spec in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    {
                        var parts = spec.Split(':');
                        var partitions = 1;
                        if (parts.Length > 2 || parts[0].Length == 0 || (parts.Length == 2 && !TryParsePositive(parts[1], out partitions)))
                        {
                            error = $"bad topic spec '{spec}', expected name or name:partitions";
                            return null;
                        }

                        topics.Add((parts[0], partitions));
                    }

                    break;
                default:
                    error = $"unknown option '{name}'";
                    return null;
            }
        }

        return new DevKafkaOptions(brokers, bootstrapFile, controlPort, topics);
    }

    private static bool TryParsePositive(string text, out int value) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value > 0;
}
