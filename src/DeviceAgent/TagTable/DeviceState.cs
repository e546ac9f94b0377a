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

    /// <summary>Version of the device's tag-table stream; the next entry's token is this plus one.</summary>
    public long StreamVersion { get; set; }
}
