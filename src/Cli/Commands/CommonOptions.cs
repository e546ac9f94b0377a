using System.CommandLine;
using System.Globalization;

namespace TaggedMirror.Cli.Commands;

/// <summary>Options more than one command takes, with the local stack's defaults (ops/stack-start.sh).</summary>
internal static class CommonOptions
{
    public const string DefaultController = "http://127.0.0.1:5100";
    public const string DefaultAgents = "http://127.0.0.1:5101,http://127.0.0.1:5102";
    public const string DefaultPostgres = "Host=127.0.0.1;Username=tm;Password=tm;Database=tm";

    public static Option<string> Controller() => new("--controller")
    {
        Description = "The controller's base URL",
        DefaultValueFactory = _ => DefaultController,
    };

    public static Option<string> Agents() => new("--agents")
    {
        Description = "Comma-separated base URLs of the device agents",
        DefaultValueFactory = _ => DefaultAgents,
    };

    public static Option<string> Volume(string defaultName) => new("--volume")
    {
        Description = "The volume to use; created (mirrored on d0 and d1) when absent",
        DefaultValueFactory = _ => defaultName,
    };

    public static Uri[] ParseAgents(string list) =>
        [.. list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(a => Api.TmHttp.ParseBase(a, "agent URL"))];

    /// <summary>
    /// Bytes, or a whole number with K/KiB, M/MiB, G/GiB or T/TiB (powers of 1024); <paramref name="option"/> names it in
    /// the error. Negative numbers, fractions and sizes past a 64-bit byte count are refused, zero unless allowed.
    /// </summary>
    public static long ParseSize(string text, string option, bool allowZero = false)
    {
        var t = text.Trim();
        var unit = 1L;
        foreach (var (suffix, factor) in new[] { ("KiB", 1L << 10), ("MiB", 1L << 20), ("GiB", 1L << 30), ("TiB", 1L << 40), ("K", 1L << 10), ("M", 1L << 20), ("G", 1L << 30), ("T", 1L << 40) })
        {
            if (t.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                unit = factor;
                t = t[..^suffix.Length].Trim();
                break;
            }
        }
        if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < (allowZero ? 0 : 1) || n > long.MaxValue / unit)
            throw new CliException($"{option} '{text}' is not a size: use bytes, or a whole number with KiB, MiB, GiB or TiB");
        return n * unit;
    }

    /// <summary>A comma-separated list of device ids, each valid.</summary>
    public static string[] ParseDevices(string list, string option) =>
        [.. list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(d => CheckDevice(d, $"device id in {option}"))];

    public static string CheckDevice(string id, string what = "device id") =>
        Contracts.Names.IsValid(id) ? id : throw new CliException($"{what} '{id}' is not valid: use 1 to 48 lower-case letters, digits or dashes");

    public static string CheckVolumeName(string name) =>
        Contracts.Names.IsValid(name) ? name : throw new CliException($"volume name '{name}' is not valid: use 1 to 48 lower-case letters, digits or dashes");
}
