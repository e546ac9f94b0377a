using System.Collections.Concurrent;
using Microsoft.Win32.SafeHandles;

namespace TaggedMirror.DeviceAgent.BlockStore;

/// <summary>
/// The device's block store: one file per storage object, positional I/O only (no stream, no seek),
/// so concurrent reads never contend with the consumer's writes. Only the apply loop writes and creates files.
/// </summary>
internal sealed class ObjectFiles : IDisposable
{
    private readonly string _directory;
    private readonly ConcurrentDictionary<string, SafeFileHandle> _handles = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SafeFileHandle> _readHandles = new(StringComparer.Ordinal);
    private readonly HashSet<SafeFileHandle> _unflushed = [];
    private bool _directoryUnsynced;

    public ObjectFiles(string directory)
    {
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

    public void Write(string objectId, long byteOffset, ReadOnlySpan<byte> data)
    {
        var handle = _handles.GetOrAdd(objectId, OpenForWrite);
        RandomAccess.Write(handle, data, byteOffset);
        _unflushed.Add(handle);
    }

    /// <summary>
    /// Makes every write since the last call durable, and the directory entries of the files written: called
    /// before the batch is recorded, so a power loss never leaves a recorded write in a file whose name is gone.
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

    /// <summary>Reads a range; bytes never written (or an object with no file yet) read as zeros.</summary>
    public void Read(string objectId, long byteOffset, Span<byte> destination)
    {
        // Reads have handles of their own: a read never creates a file, and the writer's first open of each file
        // is what marks the directory for a sync.
        if (!_readHandles.TryGetValue(objectId, out var handle))
        {
            try
            {
                handle = _readHandles.GetOrAdd(objectId, id => File.OpenHandle(PathOf(id), FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
            }
            catch (FileNotFoundException)
            {
                destination.Clear();
                return;
            }
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

    private SafeFileHandle OpenForWrite(string objectId)
    {
        // The directory is synced once per file per process, not only when this call created the file: a file
        // created by a run that crashed before its sync exists now, yet its entry may still not be on disk.
        var handle = File.OpenHandle(PathOf(objectId), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
        _directoryUnsynced = true;
        return handle;
    }

    public void Dispose()
    {
        foreach (var h in _handles.Values.Concat(_readHandles.Values))
            h.Dispose();
        _handles.Clear();
        _readHandles.Clear();
    }
}
