namespace TaggedMirror.Nbd.Server;

/// <summary>
/// Bytes a connection may hold at once, counted in 64 KiB units. Only the connection's reader takes from it (one
/// taker, so no two can each hold half of what both need); requests give back when answered.
/// </summary>
internal sealed class ByteBudget(long bytes) : IDisposable
{
    private const int Unit = 64 * 1024;

    private readonly SemaphoreSlim _units = new((int)Math.Max(1, bytes / Unit));

    public async Task TakeAsync(long bytes, CancellationToken ct)
    {
        for (var i = Units(bytes); i > 0; i--) await _units.WaitAsync(ct).ConfigureAwait(false);
    }

    public void Give(long bytes) => _units.Release(Units(bytes));

    private static int Units(long bytes) => (int)Math.Max(1, (bytes + Unit - 1) / Unit);

    public void Dispose() => _units.Dispose();
}
