using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using Microsoft.Win32.SafeHandles;

namespace TaggedMirror.DeviceAgent.BlockStore;

/// <summary>
/// The device's block store: one file per storage object, positional I/O only (no stream, no seek),
/// so concurrent reads never contend with the consumer's writes. Only the apply loop writes and creates files.
/// <para>
/// Beside each object file, <c>&lt;object&gt;.sum</c> holds a checksum per block (XxHash64, 8 bytes, little-endian,
/// at block × 8), written with the block and made durable with it, as ZFS keeps a block's checksum apart from the
/// block: a scrub (<c>tm verify</c>) then tells which mirror's bytes changed behind the product's back, even with two
/// mirrors. 0 means no checksum recorded (a block never written, or written before checksums existed).
/// </para>
/// <para>
/// Checksums are written with their blocks but made durable apart from them, every five seconds (as the kernel's own writeback) and at a clean
/// stop, off the apply loop (a second fsync per batch cost a quarter of the writes per second at 16 in flight). A
/// crash may then leave a block durable with the checksum of what it held before: <c>tm verify</c> tells that from a
/// corruption because the block's bytes equal the verified copy's, and rewrites it (docs/design.md, "Verify").
/// </para>
/// </summary>
internal sealed class ObjectFiles : IDisposable
{
    private readonly string _directory;
    private readonly ConcurrentDictionary<string, SafeFileHandle> _handles = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SafeFileHandle> _readHandles = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SafeFileHandle> _sumHandles = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SafeFileHandle> _sumReadHandles = new(StringComparer.Ordinal);
    private readonly HashSet<SafeFileHandle> _unflushed = [];
    private readonly HashSet<SafeFileHandle> _unsyncedSums = [];
    private readonly Lock _sumsLock = new();
    private readonly Lock _openLock = new();
    private readonly Timer _sumsTimer;
    private bool _directoryUnsynced;

    /// <summary>How often written checksums are made durable.</summary>
    public static readonly TimeSpan SumsSyncInterval = TimeSpan.FromSeconds(5);

    public ObjectFiles(string directory)
    {
        _sumsTimer = new Timer(_ => SyncSums(), null, SumsSyncInterval, SumsSyncInterval);
        _directory = Path.GetFullPath(directory);
        var existed = Directory.Exists(_directory);
        Directory.CreateDirectory(_directory);
        // A data directory made now must itself survive a power loss before anything in it is recorded.
        if (!existed && Path.GetDirectoryName(_directory) is { } parent) DirectorySync.Fsync(parent);
    }

    public string DirectoryPath => _directory;

    /// <summary>
    /// An object id names a file in the data directory and nothing else: <c>volume.device</c>, each part a valid
    /// name (lower-case letters, digits, dashes), so no separator, no <c>..</c>, no NUL can reach a path.
    /// </summary>
    public static bool IsValidObjectId(string objectId)
    {
        var dot = objectId.IndexOf('.', StringComparison.Ordinal);
        return dot > 0 && Contracts.Names.IsValid(objectId[..dot]) && Contracts.Names.IsValid(objectId[(dot + 1)..]);
    }

    public string PathOf(string objectId)
    {
        if (!IsValidObjectId(objectId))
            throw new ArgumentException($"object id '{objectId}' is not a file name in the data directory", nameof(objectId));
        return Path.Combine(_directory, objectId + ".obj");
    }

    /// <summary>The checksums file beside an object's file.</summary>
    public string SumsPathOf(string objectId) => Path.ChangeExtension(PathOf(objectId), ".sum");

    /// <summary>
    /// Writes whole blocks and their checksums. The blocks become durable at the next <see cref="FlushWritten"/>,
    /// before the batch is recorded (a crash in between leaves them unrecorded, and the transaction is applied
    /// again); the checksums within <see cref="SumsSyncInterval"/>.
    /// </summary>
    public void Write(string objectId, long byteOffset, ReadOnlySpan<byte> data, int blockSize)
    {
        if (blockSize <= 0 || byteOffset % blockSize != 0 || data.Length % blockSize != 0)
            throw new ArgumentException($"a write of {data.Length} bytes at {byteOffset} is not whole blocks of {blockSize}");
        var handle = _handles.GetOrAdd(objectId, OpenForWrite);
        RandomAccess.Write(handle, data, byteOffset);
        _unflushed.Add(handle);
        var blocks = data.Length / blockSize;
        var sums = ArrayPool<byte>.Shared.Rent(blocks * 8);
        try
        {
            for (var b = 0; b < blocks; b++)
                BinaryPrimitives.WriteUInt64LittleEndian(sums.AsSpan(b * 8), BlockSum(data.Slice(b * blockSize, blockSize)));
            WriteSums(objectId, sums.AsSpan(0, blocks * 8), byteOffset / blockSize);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(sums);
        }
    }

    private static ulong BlockSum(ReadOnlySpan<byte> block) => Contracts.Api.BlockChecksums.Of(block);

    /// <summary>Writes checksums from <paramref name="firstBlock"/>'s on, made durable by the next <see cref="SyncSums"/>.</summary>
    private void WriteSums(string objectId, ReadOnlySpan<byte> sums, long firstBlock)
    {
        var handle = _sumHandles.GetOrAdd(objectId, id => OpenForWriteAt(SumsPathOf(id)));
        RandomAccess.Write(handle, sums, firstBlock * 8);
        lock (_sumsLock) _unsyncedSums.Add(handle);
    }

    /// <summary>Zero bytes to write where a hole cannot be punched, and to checksum a zero block: the largest block.</summary>
    private static readonly byte[] Zeroes = new byte[1 << 20];

    /// <summary>Checksums written per call while a zeroed range's are written.</summary>
    private const int ZeroSumsPerWrite = 64 * 1024;

    /// <summary>
    /// Zeroes whole blocks (a <see cref="Contracts.Transactions.TransactionKind.Zero"/>), durable like a write's at
    /// the next <see cref="FlushWritten"/>. The range's space goes back to the file system where it can (a hole
    /// punched, keeping the file's size, as a discard does); elsewhere zeroes are written. Its checksums are a zero
    /// block's. Bytes past the file's end already read as zeros, and stay so.
    /// </summary>
    public void Zero(string objectId, long byteOffset, long length, int blockSize)
    {
        if (blockSize <= 0 || byteOffset < 0 || length <= 0 || byteOffset % blockSize != 0 || length % blockSize != 0)
            throw new ArgumentException($"a zero of {length} bytes at {byteOffset} is not whole blocks of {blockSize}");
        var handle = _handles.GetOrAdd(objectId, OpenForWrite);
        if (!FileSpace.TryPunchHole(handle, byteOffset, length))
        {
            for (long done = 0; done < length;)
            {
                var n = (int)Math.Min(Zeroes.Length, length - done);
                RandomAccess.Write(handle, Zeroes.AsSpan(0, n), byteOffset + done);
                done += n;
            }
        }
        _unflushed.Add(handle);
        var blocks = length / blockSize;
        var sum = BlockSum(Zeroes.AsSpan(0, blockSize));
        var chunk = (int)Math.Min(blocks, ZeroSumsPerWrite);
        var sums = ArrayPool<byte>.Shared.Rent(chunk * 8);
        try
        {
            for (var b = 0; b < chunk; b++) BinaryPrimitives.WriteUInt64LittleEndian(sums.AsSpan(b * 8), sum);
            var firstBlock = byteOffset / blockSize;
            for (long done = 0; done < blocks;)
            {
                var n = (int)Math.Min(chunk, blocks - done);
                WriteSums(objectId, sums.AsSpan(0, n * 8), firstBlock + done);
                done += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(sums);
        }
    }


    /// <summary>
    /// Per block of [<paramref name="firstBlock"/>, +<paramref name="count"/>): the checksum of the bytes the file
    /// holds now, and the one recorded when they were written (0: none recorded).
    /// </summary>
    public (ulong[] Actual, ulong[] Recorded) Checksums(string objectId, long firstBlock, int count, int blockSize)
    {
        var actual = new ulong[count];
        var recorded = new ulong[count];
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(blockSize, count * 8));
        try
        {
            for (var b = 0; b < count; b++)
            {
                Read(objectId, (firstBlock + b) * blockSize, buffer.AsSpan(0, blockSize));
                actual[b] = BlockSum(buffer.AsSpan(0, blockSize));
            }
            ReadFile(_sumReadHandles, objectId, SumsPathOf, firstBlock * 8, buffer.AsSpan(0, count * 8));
            for (var b = 0; b < count; b++)
                recorded[b] = BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(b * 8));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return (actual, recorded);
    }

    /// <summary>
    /// Makes every write since the last call durable, and the directory entries of the files written or deleted:
    /// called before the batch is recorded, so a power loss never leaves a recorded write in a file whose name is
    /// gone, nor a recorded delete's file back.
    /// </summary>
    public void FlushWritten()
    {
        foreach (var h in _unflushed)
            RandomAccess.FlushToDisk(h);
        _unflushed.Clear();
        if (_directoryUnsynced)
        {
            DirectorySync.Fsync(_directory);
            _directoryUnsynced = false;
        }
    }

    /// <summary>The handle reads of an object's file use; null while it has no file.</summary>
    private SafeFileHandle? ReadHandle(ConcurrentDictionary<string, SafeFileHandle> handles, string objectId, Func<string, string> path)
    {
        // Reads have handles of their own: a read never creates a file, and the writer's first open of each file
        // is what marks the directory for a sync.
        if (handles.TryGetValue(objectId, out var handle)) return handle;
        // Opened and kept under the lock deletion holds: a handle opened just before a file is deleted and kept
        // just after would read the deleted bytes for the rest of the process, even once the object id is
        // written again. Once per object and process, so never on the hot path.
        lock (_openLock)
        {
            if (handles.TryGetValue(objectId, out handle)) return handle;
            try
            {
                handle = File.OpenHandle(path(objectId), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            }
            catch (FileNotFoundException)
            {
                return null;
            }
            handles[objectId] = handle;
            return handle;
        }
    }

    /// <summary>Reads a range; bytes never written (or an object with no file yet) read as zeros.</summary>
    public void Read(string objectId, long byteOffset, Span<byte> destination) =>
        ReadFile(_readHandles, objectId, PathOf, byteOffset, destination);

    /// <summary>
    /// The parts of an object's [<paramref name="byteOffset"/>, +<paramref name="length"/>) that hold data, at most
    /// <paramref name="maxRanges"/>, and how far they were looked for; the rest of that reads as zeros (holes, punched or
    /// never written, and past the file's end). An object with no file yet holds none.
    /// </summary>
    public (List<(long Offset, long Length)> Data, long Until) DataRanges(string objectId, long byteOffset, long length, int maxRanges)
    {
        var end = byteOffset + length;
        return ReadHandle(_readHandles, objectId, PathOf) is { } handle ? FileSpace.DataRanges(handle, byteOffset, end, maxRanges) : ([], end);
    }

    private void ReadFile(
        ConcurrentDictionary<string, SafeFileHandle> handles, string objectId, Func<string, string> path, long byteOffset, Span<byte> destination)
    {
        if (ReadHandle(handles, objectId, path) is not { } handle)
        {
            destination.Clear();
            return;
        }
        var done = 0;
        while (done < destination.Length)
        {
            var n = RandomAccess.Read(handle, destination[done..], byteOffset + done);
            if (n == 0)
            {
                destination[done..].Clear();
                return;
            }
            done += n;
        }
    }

    private SafeFileHandle OpenForWrite(string objectId) => OpenForWriteAt(PathOf(objectId));

    private SafeFileHandle OpenForWriteAt(string path)
    {
        // The directory is synced once per file per process, not only when this call created the file: a file
        // created by a run that crashed before its sync exists now, yet its entry may still not be on disk.
        var handle = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
        _directoryUnsynced = true;
        return handle;
    }

    /// <summary>
    /// Deletes every object file and checksum file (a rebuild from the log starts from nothing). Called by the apply
    /// loop, the only writer; a read in flight on a closed handle fails, and reads of the deleted objects answer zeros
    /// until they are written again. Like <see cref="Delete"/>, the deletion is made durable by the next
    /// <see cref="FlushWritten"/>, before the rebuild records it: the directory is synced once for the deletion and
    /// the files the first replayed batch creates.
    /// </summary>
    public int DeleteAll()
    {
        var deleted = 0;
        lock (_openLock)
        {
            CloseAll();
            _unflushed.Clear();
            foreach (var path in Directory.EnumerateFiles(_directory))
            {
                if (!path.EndsWith(".obj", StringComparison.Ordinal) && !path.EndsWith(".sum", StringComparison.Ordinal)) continue;
                File.Delete(path);
                deleted++;
            }
        }
        _directoryUnsynced = true;
        return deleted;
    }

    /// <summary>
    /// Deletes one object's file and checksum file (a <c>Delete</c> transaction). Called by the apply loop in the
    /// order of the transactions: a write of the same object after this one creates a new, empty file. Idempotent:
    /// files already gone are fine. The object's handles are closed first and its pending checksum sync dropped, so
    /// nothing more reaches the deleted files; a read in flight on a closed handle fails, and later reads answer
    /// zeros until the object is written again. Like a file's creation, the deletion is made durable (the data
    /// directory synced) by the next <see cref="FlushWritten"/>, before the batch is recorded: a recorded delete
    /// never finds its old file back after a power loss, to be read, or written into, as the object created again.
    /// </summary>
    public void Delete(string objectId)
    {
        var path = PathOf(objectId);
        var sumsPath = SumsPathOf(objectId);
        if (_handles.TryRemove(objectId, out var handle))
        {
            // Its unflushed writes went to a file that is about to go: nothing left to flush.
            _unflushed.Remove(handle);
            handle.Dispose();
        }
        if (_sumHandles.TryRemove(objectId, out var sumHandle))
        {
            // The timer may hold it already: a flush of a closed handle is skipped there (ObjectDisposedException).
            lock (_sumsLock) _unsyncedSums.Remove(sumHandle);
            sumHandle.Dispose();
        }
        lock (_openLock)
        {
            if (_readHandles.TryRemove(objectId, out var read)) read.Dispose();
            if (_sumReadHandles.TryRemove(objectId, out var sumRead)) sumRead.Dispose();
            File.Delete(path);
            File.Delete(sumsPath);
        }
        _directoryUnsynced = true;
    }

    /// <summary>Makes the checksums written so far durable (the timer's work; also at a clean stop).</summary>
    public void SyncSums()
    {
        SafeFileHandle[] handles;
        lock (_sumsLock)
        {
            handles = [.. _unsyncedSums];
            _unsyncedSums.Clear();
        }
        foreach (var h in handles)
        {
            try
            {
                RandomAccess.FlushToDisk(h);
            }
            catch (ObjectDisposedException)
            {
                // Closed by a rebuild's deletion: nothing left to make durable.
            }
            catch (IOException)
            {
                // Never fatal here (this runs on a timer): a checksum lost to a failing disk reads as stale, which
                // verify tells apart and rewrites; the blocks themselves are flushed by the apply loop, which faults.
            }
        }
    }

    public void Dispose()
    {
        _sumsTimer.Dispose();
        SyncSums();
        CloseAll();
    }

    private void CloseAll()
    {
        lock (_sumsLock) _unsyncedSums.Clear();
        foreach (var h in _handles.Values.Concat(_readHandles.Values).Concat(_sumHandles.Values).Concat(_sumReadHandles.Values))
            h.Dispose();
        _handles.Clear();
        _readHandles.Clear();
        _sumHandles.Clear();
        _sumReadHandles.Clear();
    }
}
