using TaggedMirror.Nbd.Protocol;
using TaggedMirror.Nbd.Server;

namespace TaggedMirror.Nbd.Tests.Support;

/// <summary>An export held in memory, counting what reached it: the server's tests need to see that a refused request changed nothing.</summary>
public sealed class MemoryExport(string name, int size, uint blockSize = 512) : INbdExport
{
    private readonly byte[] _bytes = new byte[size];
    private int _writes;
    private int _flushes;

    public string Name => name;

    public string Description => "in-memory test disk";

    public ulong Size => (ulong)_bytes.Length;

    public uint MinimumBlockSize => blockSize;

    public uint PreferredBlockSize => Math.Max(512, blockSize);

    /// <summary>Served read-only (every connection).</summary>
    public bool ReadOnly { get; init; }

    /// <summary>Writes, zero writes and trims that reached the export.</summary>
    public int Writes => Volatile.Read(ref _writes);

    public int Flushes => Volatile.Read(ref _flushes);

    public byte[] Snapshot()
    {
        lock (_bytes) return (byte[])_bytes.Clone();
    }

    public ValueTask<byte[]> ReadAsync(ulong offset, int length, CancellationToken ct)
    {
        lock (_bytes) return ValueTask.FromResult(_bytes.AsSpan((int)offset, length).ToArray());
    }

    public ValueTask WriteAsync(ulong offset, byte[] data, bool fua, CancellationToken ct)
    {
        Interlocked.Increment(ref _writes);
        lock (_bytes) data.CopyTo(_bytes, (int)offset);
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteZeroesAsync(ulong offset, ulong length, bool fua, CancellationToken ct)
    {
        Interlocked.Increment(ref _writes);
        lock (_bytes) _bytes.AsSpan((int)offset, (int)length).Clear();
        return ValueTask.CompletedTask;
    }

    public ValueTask TrimAsync(ulong offset, ulong length, bool fua, CancellationToken ct) => WriteZeroesAsync(offset, length, fua, ct);

    public ValueTask FlushAsync(CancellationToken ct)
    {
        Interlocked.Increment(ref _flushes);
        return ValueTask.CompletedTask;
    }

    /// <summary>When set, what <see cref="BlockStatusAsync"/> answers instead of the content's status (an export that breaks its contract).</summary>
    public Func<ulong, uint, IReadOnlyList<NbdExtent>>? StatusOverride { get; init; }

    /// <summary>As a sparse file would say: every all-zero block a hole reading as zeros, the others data, block by block, merged.</summary>
    public ValueTask<IReadOnlyList<NbdExtent>> BlockStatusAsync(ulong offset, uint length, CancellationToken ct)
    {
        if (StatusOverride is { } status) return ValueTask.FromResult(status(offset, length));
        var extents = new List<NbdExtent>();
        lock (_bytes)
        {
            for (var at = offset; at < offset + length && at < Size; at += blockSize)
            {
                var kind = _bytes.AsSpan((int)at, (int)blockSize).ContainsAnyExcept((byte)0) ? NbdAllocation.Data : NbdAllocation.Hole | NbdAllocation.Zero;
                if (extents.Count > 0 && extents[^1].Status == kind) extents[^1] = extents[^1] with { Length = extents[^1].Length + blockSize };
                else extents.Add(new NbdExtent(blockSize, kind));
            }
        }
        return ValueTask.FromResult<IReadOnlyList<NbdExtent>>(extents);
    }
}
