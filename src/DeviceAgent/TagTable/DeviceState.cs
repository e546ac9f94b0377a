using TaggedMirror.DeviceAgent.BlockStore;

namespace TaggedMirror.DeviceAgent.TagTable;

/// <summary>
/// What the agent knows about its device, as last committed to PostgreSQL. Rebuilt from PostgreSQL after
/// any failure, so an uncommitted batch never leaves the in-memory copy ahead of the durable one.
/// </summary>
internal sealed class DeviceState
{
    public Dictionary<string, StorageObject> Objects { get; } = new(StringComparer.Ordinal);

    public Dictionary<long, LiveEntry> Live { get; } = [];

    public Dictionary<int, long> NextOffsets { get; } = [];

    /// <summary>
    /// The coverage of the last barrier pass recorded per (partition, controller) since this state was loaded: a
    /// pass that covers nothing more (an idle controller repeats its barrier) is not recorded again.
    /// </summary>
    public Dictionary<(int Partition, int ControllerId), (int Epoch, long UpToSeq)> RecordedBarriers { get; } = [];

    /// <summary>Newest owner epoch seen per (object, partition): writes from older owners are refused there.</summary>
    public Dictionary<(string ObjectId, int Partition), long> OwnerEpochs { get; } = [];

    /// <summary>The device's newest rebuild from its log, running or done (null: never rebuilt).</summary>
    public RebuildState? Rebuild { get; set; }

    /// <summary>Version of the device's tag-table stream; the next entry's token is this plus one.</summary>
    public long StreamVersion { get; set; }
}
