using System.CommandLine;

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

    public static string CheckVolumeName(string name) =>
        Contracts.Names.IsValid(name) ? name : throw new CliException($"volume name '{name}' is not valid: use 1 to 48 lower-case letters, digits or dashes");
}
