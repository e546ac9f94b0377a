using TaggedMirror.Nbd.Server;

namespace TaggedMirror.Nbd.Tests.Support;

/// <summary>A fixed set of in-memory exports, plus one name that exists but is refused (as a volume another controller serves).</summary>
public sealed class MemoryExports(params MemoryExport[] exports) : INbdExports
{
    public const string RefusedName = "elsewhere";

    public ValueTask<IReadOnlyList<NbdExportEntry>> ListAsync(NbdClient client, CancellationToken ct) =>
        ValueTask.FromResult<IReadOnlyList<NbdExportEntry>>([.. exports.Select(e => new NbdExportEntry(e.Name, e.Description))]);

    /// <summary>Every client an export was opened for, in order.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<NbdClient> Clients { get; } = new();

    public ValueTask<NbdOpenResult> OpenAsync(string name, NbdClient client, CancellationToken ct) => ValueTask.FromResult(
        Record(client) && exports.FirstOrDefault(e => e.Name == name) is { } export ? NbdOpenResult.Opened(export)
        : name == RefusedName ? NbdOpenResult.Refused($"export {name} is served by another server")
        : NbdOpenResult.Unknown($"no export named '{name}'"));

    private bool Record(NbdClient client)
    {
        Clients.Enqueue(client);
        return true;
    }
}
