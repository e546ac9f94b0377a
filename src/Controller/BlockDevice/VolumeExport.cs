using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Reads;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting;
using TaggedMirror.Nbd.Protocol;
using TaggedMirror.Nbd.Server;

namespace TaggedMirror.Controller.BlockDevice;

/// <summary>
/// One volume as one connection's export. Every request goes through the same code as the HTTP API: a write is
/// answered once it is in every reachable mirror's log (the same acknowledgement), a read returns every write
/// answered before it. The size is the volume's at connect (a volume grown since is seen by a new connection).
/// <para>
/// The volume is looked up again for every request (a change of its mirrors replaces the object; a delete or a
/// takeover ends it: <c>EIO</c> with the reason). A payload larger than one write may carry is sent as several
/// tagged writes at once (NBD promises no atomicity for a request). Zeroes and trims are tagged zeroes
/// (<see cref="TransactionKind.Zero"/>): each mirror's log gets a header per piece of at most
/// <see cref="ZeroPieceBytes"/>, not the bytes, at most <see cref="ZeroWritesInFlight"/> pieces at a time; the devices
/// punch holes where their file system can. A zero's <c>NO_HOLE</c> flag is not honoured (the range reads as zeros either way).
/// </para>
/// <para>
/// <paramref name="authorize"/>, when the connection acts as a key, runs before every request and throws
/// <c>EPERM</c> once that key is revoked: a revocation ends what open connections may do, not only new ones.
/// </para>
/// </summary>
internal sealed class VolumeExport(
    Volume opened, VolumeCatalog catalog, WritePipeline pipeline, VolumeReader reader, ControllerOptions options, string description, WriteOrigin origin,
    bool readOnly = false, Func<CancellationToken, ValueTask>? authorize = null)
    : INbdExport
{
    private const int ZeroWritesInFlight = 8;

    /// <summary>The most one zero transaction covers (a trim can ask for 4 GiB at once).</summary>
    private const long ZeroPieceBytes = 1L << 30;

    // The largest piece one tagged write carries: whole blocks within MaxWriteBytes.
    private readonly int _piece = options.MaxWriteBytes / opened.BlockSize * opened.BlockSize;

    public string Name => opened.Name;

    /// <summary>The client's key may read the volume but not write it.</summary>
    public bool ReadOnly => readOnly;

    public string Description => description;

    public ulong Size { get; } = (ulong)opened.Blocks * (ulong)opened.BlockSize;

    public uint MinimumBlockSize => (uint)opened.BlockSize;

    public uint PreferredBlockSize => (uint)Math.Max(512, opened.BlockSize);

    public async ValueTask<byte[]> ReadAsync(ulong offset, int length, CancellationToken ct)
    {
        await AuthorizeAsync(ct);
        var v = Current();
        try
        {
            return await reader.ReadAsync(v, (long)(offset / MinimumBlockSize), length / opened.BlockSize, ct);
        }
        catch (ReadFailedException ex)
        {
            throw new NbdException(NbdError.Io, ex.Message);
        }
        catch (Exception ex) when (TransientErrors.IsTransient(ex) && ex is not OperationCanceledException)
        {
            throw new NbdException(NbdError.Io, $"volume {Name}: the metadata store is unreachable ({ex.Message})");
        }
    }

    /// <summary>
    /// Where the range holds data and where it reads as zeros, from a current mirror's file system after it applied every
    /// write answered before (the same wait as a read): a hole there is a zero of the volume, so a client that skips
    /// reading it (nbdcopy, qemu-img) copies the same bytes.
    /// </summary>
    public async ValueTask<IReadOnlyList<NbdExtent>> BlockStatusAsync(ulong offset, uint length, CancellationToken ct)
    {
        await AuthorizeAsync(ct);
        var v = Current();
        try
        {
            var allocation = await reader.AllocationAsync(v, (long)(offset / MinimumBlockSize), length / MinimumBlockSize, ct);
            return Extents((long)offset, length, allocation, opened.BlockSize);
        }
        catch (ReadFailedException ex)
        {
            throw new NbdException(NbdError.Io, ex.Message);
        }
        catch (Exception ex) when (TransientErrors.IsTransient(ex) && ex is not OperationCanceledException)
        {
            throw new NbdException(NbdError.Io, $"volume {Name}: the metadata store is unreachable ({ex.Message})");
        }
    }

    /// <summary>
    /// A device's data ranges of [<paramref name="offset"/>, +<paramref name="length"/>) as whole-block extents: a block
    /// with any data in it is data, the blocks between are holes that read as zeros, up to how far the device looked.
    /// </summary>
    internal static List<NbdExtent> Extents(long offset, uint length, Contracts.Api.ObjectAllocation allocation, int blockSize)
    {
        var extents = new List<NbdExtent>();
        var end = offset + length;
        var at = offset;
        void Add(long bytes, NbdAllocation status)
        {
            if (extents.Count > 0 && extents[^1].Status == status) extents[^1] = extents[^1] with { Length = extents[^1].Length + (uint)bytes };
            else extents.Add(new NbdExtent((uint)bytes, status));
            at += bytes;
        }
        for (var i = 0; i < allocation.DataOffsets.Length && at < end; i++)
        {
            var start = Math.Max(at, allocation.DataOffsets[i] / blockSize * blockSize);
            var stop = Math.Min(end, (allocation.DataOffsets[i] + allocation.DataLengths[i] + blockSize - 1) / blockSize * blockSize);
            if (stop <= start) continue;
            if (start > at) Add(start - at, NbdAllocation.Hole | NbdAllocation.Zero);
            Add(stop - start, NbdAllocation.Data);
        }
        var until = Math.Min(end, allocation.Until / blockSize * blockSize);
        if (until > at) Add(until - at, NbdAllocation.Hole | NbdAllocation.Zero);
        // Nothing known (a device that looked at less than a block): the first block is data, which is always true.
        if (extents.Count == 0) extents.Add(new NbdExtent((uint)Math.Min(length, blockSize), NbdAllocation.Data));
        return extents;
    }

    public async ValueTask WriteAsync(ulong offset, byte[] data, bool fua, CancellationToken ct)
    {
        await AuthorizeAsync(ct);
        if (data.Length <= _piece)
        {
            await WriteOneAsync((long)(offset / MinimumBlockSize), data, ct);
            return;
        }
        var pieces = new List<Task>();
        for (var at = 0; at < data.Length; at += _piece)
        {
            var piece = data.AsSpan(at, Math.Min(_piece, data.Length - at)).ToArray();
            pieces.Add(WriteOneAsync((long)((offset + (ulong)at) / MinimumBlockSize), piece, ct));
        }
        await Task.WhenAll(pieces);
    }

    public ValueTask WriteZeroesAsync(ulong offset, ulong length, bool fua, CancellationToken ct) => new(ZeroAsync(offset, length, ct));

    /// <summary>A trim is a tagged zero like a write of zeroes (a mirror that missed one is resynced like any write).</summary>
    public ValueTask TrimAsync(ulong offset, ulong length, bool fua, CancellationToken ct) => new(ZeroAsync(offset, length, ct));

    private ValueTask AuthorizeAsync(CancellationToken ct) => authorize is null ? ValueTask.CompletedTask : authorize(ct);

    /// <summary>
    /// Every write answered before it is in every reachable mirror's log (acks=all, the product's durability, as an
    /// HTTP acknowledgement): nothing left to wait for, on this connection or any other. The volume must still be here.
    /// </summary>
    public async ValueTask FlushAsync(CancellationToken ct)
    {
        await AuthorizeAsync(ct);
        Current();
    }

    private async Task ZeroAsync(ulong offset, ulong length, CancellationToken ct)
    {
        await AuthorizeAsync(ct);
        var piece = (ulong)(ZeroPieceBytes / opened.BlockSize * opened.BlockSize);
        var starts = new List<ulong>();
        for (var at = 0UL; at < length; at += piece) starts.Add(at);
        await Parallel.ForEachAsync(starts, new ParallelOptions { MaxDegreeOfParallelism = ZeroWritesInFlight, CancellationToken = ct }, async (at, c) =>
        {
            var first = (long)((offset + at) / MinimumBlockSize);
            var blocks = (int)(Math.Min(piece, length - at) / MinimumBlockSize);
            await SendAsync(v => pipeline.ZeroAsync(v, first, blocks, waitApplied: false, origin, c));
        });
    }

    private Task WriteOneAsync(long firstBlock, byte[] data, CancellationToken ct) =>
        SendAsync(v => pipeline.WriteAsync(v, TransactionKind.Write, firstBlock, data, waitApplied: false, origin, ct));

    /// <summary>One tagged write or zero on the volume as it is now, its failures told as NBD errors.</summary>
    private async Task SendAsync(Func<Volume, Task<TaggedMirror.Contracts.Api.WriteResult>> send)
    {
        var v = Current();
        try
        {
            await send(v);
        }
        catch (WriteFailedException ex)
        {
            throw new NbdException(NbdError.Io, ex.Message);
        }
        catch (VolumeChangedException)
        {
            throw new NbdException(NbdError.Io, $"volume {Name} was deleted");
        }
        catch (VolumeTakenOverException ex)
        {
            throw new NbdException(NbdError.Io, ex.Message);
        }
        catch (Exception ex) when (ex is Polly.Timeout.TimeoutRejectedException || (TransientErrors.IsTransient(ex) && ex is not OperationCanceledException))
        {
            throw new NbdException(NbdError.Io, $"volume {Name}: the metadata store is unreachable ({ex.Message})");
        }
    }

    /// <summary>The volume as the catalog has it now, if this controller still serves it.</summary>
    private Volume Current()
    {
        if (catalog.Find(opened.Name) is not { } v) throw new NbdException(NbdError.Io, $"volume {Name} was deleted");
        if (!v.Owned) throw new NbdException(NbdError.Io, $"volume {Name} is now served by another controller: reconnect to its owner");
        return v;
    }
}
