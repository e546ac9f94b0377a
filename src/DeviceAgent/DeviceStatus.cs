using TaggedMirror.Contracts.Api;
using TaggedMirror.DeviceAgent.Consumption;
using TaggedMirror.DeviceAgent.TagTable;

namespace TaggedMirror.DeviceAgent;

/// <summary>What the agent shows about itself on <c>GET /status</c>; updated by the apply loop after each commit.</summary>
internal sealed class DeviceStatus
{
    private readonly Lock _lock = new();
    private Dictionary<int, long> _offsets = [];
    private Dictionary<string, DeviceObjectStatus> _objects = [];
    private DeviceRebuildProgress? _rebuild;

    public bool Running { get; set; }

    public string? LastError { get; set; }

    public bool TruncationDetected { get; set; }

    /// <summary>Why the device cannot apply what it is sent (disk full, I/O error); null while it can.</summary>
    public string? Fault { get; private set; }

    public DateTimeOffset? FaultSince { get; private set; }

    /// <summary><c>starting</c>, <c>running</c>, or <c>faulted</c> (not applying, retrying; nothing skipped).</summary>
    public string State => Fault is not null ? "faulted" : Running ? "running" : "starting";

    /// <summary>Marks the device faulted; returns when the fault began (kept across retries).</summary>
    public DateTimeOffset SetFault(string reason)
    {
        lock (_lock)
        {
            Fault = reason;
            FaultSince ??= DateTimeOffset.UtcNow;
            return FaultSince.Value;
        }
    }

    public int LiveEntries { get; private set; }

    public long AppliedTransactions { get; private set; }

    public long AppliedBytes { get; private set; }

    public long DeadLettered { get; private set; }

    public void Update(DeviceState state)
    {
        lock (_lock)
        {
            LiveEntries = state.Live.Count;
            _offsets = new(state.NextOffsets);
            _objects = state.Objects.Values.ToDictionary(o => o.Id, o => new DeviceObjectStatus(o.Id, o.BlockSize, o.ObjectBlocks, o.ExtensionBlocks, o.NeedsFullCopy));
            _rebuild = state.Rebuild?.Progress(state.NextOffsets);
        }
    }

    public void Record(DeviceState state, AppliedBatch batch)
    {
        lock (_lock)
        {
            AppliedTransactions += batch.Acknowledgements.Count;
            AppliedBytes += batch.DataBytes;
            DeadLettered += batch.Refused.Count;
            // A batch recorded: the device applies again.
            Fault = null;
            FaultSince = null;
        }
        Update(state);
    }

    /// <summary>The newest rebuild's progress as last recorded.</summary>
    public DeviceRebuildProgress? Rebuild
    {
        get
        {
            lock (_lock) return _rebuild;
        }
    }

    public DeviceObjectStatus? Object(string id)
    {
        lock (_lock) return _objects.GetValueOrDefault(id);
    }

    public DeviceStatusAnswer Snapshot(string deviceId)
    {
        lock (_lock)
        {
            return new DeviceStatusAnswer(
                deviceId, Running, State, Fault, FaultSince, LastError, TruncationDetected, LiveEntries, AppliedTransactions,
                AppliedBytes, DeadLettered,
                _offsets.ToDictionary(kv => kv.Key.ToString(System.Globalization.CultureInfo.InvariantCulture), kv => kv.Value),
                [.. _objects.Values.OrderBy(o => o.Id, StringComparer.Ordinal)],
                _rebuild);
        }
    }
}
