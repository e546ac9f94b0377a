using System.Collections.Concurrent;
using TaggedMirror.Controller.Fanout;

namespace TaggedMirror.Controller.Volumes;

/// <summary>A mirrored volume as the owning controller keeps it in memory.</summary>
internal sealed class Volume(string name, int blockSize, long blocks, int minMirrors, Mirror[] mirrors)
{
    public string Name { get; } = name;

    public int BlockSize { get; } = blockSize;

    /// <summary>Size of the volume (and of each mirror object's base range) in blocks.</summary>
    public long Blocks { get; } = blocks;

    /// <summary>A write succeeds when at least this many mirrors hold it.</summary>
    public int MinMirrors { get; } = minMirrors;

    public Mirror[] Mirrors { get; } = mirrors;

    /// <summary>Blocks appended past <see cref="Blocks"/> so far (the objects' extension).</summary>
    public long ExtensionBlocks { get; set; }

    public long TotalBlocks => Blocks + ExtensionBlocks;

    /// <summary>
    /// Held while a write takes its tag and enqueues its copies, so every mirror's log receives this
    /// volume's writes in tag order; overlapping writes then end the same on every mirror.
    /// </summary>
    public Lock WriteLock { get; } = new();

    /// <summary>Serialises extension reservations, which are recorded in PostgreSQL before the append is sent.</summary>
    public SemaphoreSlim AppendLock { get; } = new(1, 1);

    /// <summary>Writes sent and not yet applied everywhere they were sent, by sequence (for read-your-writes).</summary>
    public ConcurrentDictionary<long, InflightWrite> Inflight { get; } = new();

    /// <summary>True while this controller holds the volume's lease.</summary>
    public bool Owned { get; set; }

    public long WritesAccepted;

    public long BytesAccepted;

    public Mirror? MirrorOn(string deviceId) => Array.Find(Mirrors, m => m.DeviceId == deviceId);
}

/// <summary>One mirror of a volume: a storage object on a device (M6).</summary>
internal sealed class Mirror(int index, string deviceId, string objectId)
{
    public int Index { get; } = index;

    public string DeviceId { get; } = deviceId;

    public string ObjectId { get; } = objectId;

    public MirrorState State { get; set; } = MirrorState.InSync;

    public string? Reason { get; set; }

    public byte[] ObjectIdUtf8 { get; } = System.Text.Encoding.UTF8.GetBytes(objectId);

    /// <summary>Copies go to mirrors that are in sync or waiting for a full copy, not to degraded ones.</summary>
    public bool ReceivesWrites => State != MirrorState.Degraded;
}
