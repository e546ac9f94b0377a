using System.Collections.Concurrent;
using Microsoft.Win32.SafeHandles;

namespace TaggedMirror.DeviceAgent.BlockStore;

/// <summary>
/// The device's block store: one file per storage object, positional I/O only (no stream, no seek),
/// so concurrent reads never contend with the consumer's writes.
/// </summary>
internal sealed class ObjectFiles : IDisposable
{
    private readonly string _directory;
    private readonly ConcurrentDictionary<string, SafeFileHandle> _handles = new(StringComparer.Ordinal);
    private readonly HashSet<SafeFileHandle> _unflushed = [];

    public ObjectFiles(string directory)
    {
        _directory = directory;
        Directory.CreateDirectory(directory);
    }

    public string PathOf(string objectId) => Path.Combine(_directory, objectId + ".obj");

    public void Write(string objectId, long byteOffset, ReadOnlySpan<byte> data)
    {
        var handle = Open(objectId);
        RandomAccess.Write(handle, data, byteOffset);
        _unflushed.Add(handle);
    }

    /// <summary>Makes every write since the last call durable. Called before the batch is recorded.</summary>
    public void FlushWritten()
    {
        foreach (var h in _unflushed)
            RandomAccess.FlushToDisk(h);
        _unflushed.Clear();
    }

    /// <summary>Reads a range; bytes never written read as zeros.</summary>
    public void Read(string objectId, long byteOffset, Span<byte> destination)
    {
        var handle = Open(objectId);
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

    private SafeFileHandle Open(string objectId) =>
        _handles.GetOrAdd(objectId, id => File.OpenHandle(PathOf(id), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite));

    public void Dispose()
    {
        foreach (var h in _handles.Values)
            h.Dispose();
        _handles.Clear();
    }
}
