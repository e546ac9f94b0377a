using System.Globalization;

namespace TaggedMirror.DevKafka;

/// <summary>
/// The fault-injection line protocol: one command per line, one answer per line,
/// <c>ok</c> or <c>error &lt;message&gt;</c>. Never throws: a bad command is an answer.
/// </summary>
internal static class ControlCommands
{
    internal const string Help =
        "commands: ping | down <brokerId> | up <brokerId> | leader <topic> <partition> <brokerId> | " +
        "rtt <brokerId> <ms> | topic <name> <partitions> [replicationFactor] | " +
        "delete-records <topic> <partition> <beforeOffset>";

    internal static string Execute(MockKafkaCluster cluster, string line)
    {
        var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (words.Length == 0)
        {
            return "error empty command; " + Help;
        }

        try
        {
            switch (words[0].ToUpperInvariant())
            {
                case "PING" when words.Length == 1:
                    break;
                case "DOWN" when words.Length == 2:
                    cluster.SetBrokerDown(Int(words[1]));
                    break;
                case "UP" when words.Length == 2:
                    cluster.SetBrokerUp(Int(words[1]));
                    break;
                case "LEADER" when words.Length == 4:
                    cluster.SetPartitionLeader(words[1], Int(words[2]), Int(words[3]));
                    break;
                case "RTT" when words.Length == 3:
                    cluster.SetBrokerRtt(Int(words[1]), Int(words[2]));
                    break;
                case "TOPIC" when words.Length is 3 or 4:
                    var replication = words.Length == 4 ? Int(words[3]) : Math.Min(3, cluster.BrokerCount);
                    cluster.CreateTopic(words[1], Int(words[2]), replication);
                    break;
                case "DELETE-RECORDS" when words.Length == 4:
                    cluster.DeleteRecords(words[1], Int(words[2]), Long(words[3]));
                    break;
                default:
                    return $"error bad command '{OneLine(line)}'; {Help}";
            }

            return "ok";
        }
        catch (Exception ex)
        {
            return "error " + OneLine(ex.Message);
        }
    }

    private static int Int(string text) =>
        int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new FormatException($"'{text}' is not an integer");

    private static long Long(string text) =>
        long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new FormatException($"'{text}' is not an integer");

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");
}
