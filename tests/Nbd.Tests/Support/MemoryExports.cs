using TaggedMirror.Nbd.Server;

namespace TaggedMirror.Nbd.Tests.Support;

/// <summary>A fixed set of in-memory exports, plus one name that exists but is refused (as a volume another controller serves).</summary>
public sealed class MemoryExports(params MemoryExport[] exports) : INbdExports
{
    public const string RefusedName = "elsewhere";

    public IReadOnlyList<NbdExportEntry> List() => [.. exports.Select(e => new NbdExportEntry(e.Name, e.Description))];

    public NbdOpenResult Open(string name, string client) =>
        exports.FirstOrDefault(e => e.Name == name) is { } export ? NbdOpenResult.Opened(export)
        : name == RefusedName ? NbdOpenResult.Refused($"export {name} is served by another server")
        : NbdOpenResult.Unknown($"no export named '{name}'");
}
