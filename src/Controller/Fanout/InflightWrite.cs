using TaggedMirror.Contracts;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller.Fanout;

/// <summary>
/// One write between its fan-out and the moment every mirror it was sent to has applied it. Holds the
/// device tokens (M5) until every mirror of the volume has the write; if a mirror was skipped or its copy
/// failed, the tokens are never returned and the entries stay in the tag tables for reconciliation.
/// </summary>
internal sealed class InflightWrite
{
    private readonly Lock _lock = new();
    private readonly long[] _tokens;
    private readonly TaskCompletionSource[] _appliedOn;
    private readonly (int Partition, long Offset)?[] _logPositions;
    private int _pending;      // bit per mirror: sent, neither applied nor failed yet
    private bool _incomplete;  // some mirror did not get it

    public InflightWrite(Tag tag, Volume volume, long firstBlock, int blockCount, int bytes, int targets)
    {
        Targets = targets;
        Tag = tag;
        Volume = volume;
        FirstBlock = firstBlock;
        BlockCount = blockCount;
        Bytes = bytes;
        _tokens = new long[volume.Mirrors.Length];
        _appliedOn = new TaskCompletionSource[volume.Mirrors.Length];
        _logPositions = new (int, long)?[volume.Mirrors.Length];
        for (var i = 0; i < _appliedOn.Length; i++)
        {
            _appliedOn[i] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if ((targets & (1 << i)) == 0) _appliedOn[i].SetResult(); // not meant for this mirror: nothing to wait for
        }
    }

    /// <summary>Bit per mirror the write is meant for: every mirror for a write, the target alone for a repair.</summary>
    public int Targets { get; }

    public Tag Tag { get; }

    public Volume Volume { get; }

    public long FirstBlock { get; set; }

    public int BlockCount { get; }

    public int Bytes { get; }

    public bool Overlaps(long firstBlock, long blocks) => FirstBlock < firstBlock + blocks && firstBlock < FirstBlock + BlockCount;

    public TaskCompletionSource AllApplied { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task AppliedOnAsync(int mirror) => _appliedOn[mirror].Task;

    public void MarkSent(int mirror)
    {
        lock (_lock) _pending |= 1 << mirror;
    }

    /// <summary>The log took the copy for <paramref name="mirror"/> at this partition and offset.</summary>
    public void MarkDelivered(int mirror, int partition, long offset)
    {
        lock (_lock) _logPositions[mirror] = (partition, offset);
    }

    /// <summary>Where the copy for <paramref name="mirror"/> is in its log, once delivered.</summary>
    public (int Partition, long Offset)? LogPositionOf(int mirror)
    {
        lock (_lock) return _logPositions[mirror];
    }

    public void MarkSkipped(int mirror)
    {
        lock (_lock) _incomplete = true;
        _appliedOn[mirror].TrySetException(new MirrorUnavailableException(Volume.Mirrors[mirror].DeviceId));
    }

    /// <summary>The copy will never be applied. Tells whether the mirror was still pending, and whether that settled the write.</summary>
    public (bool WasPending, bool Settled) MarkFailed(int mirror)
    {
        _appliedOn[mirror].TrySetException(new MirrorUnavailableException(Volume.Mirrors[mirror].DeviceId));
        lock (_lock)
        {
            if ((_pending & (1 << mirror)) == 0) return (false, false);
            _pending &= ~(1 << mirror);
            _incomplete = true;
            return (true, _pending == 0);
        }
    }

    /// <summary>
    /// The device applied the write and returned <paramref name="token"/>. Tells whether the mirror was still pending
    /// (not for a repeated acknowledgement, nor for one of a copy already counted as failed or skipped), and whether
    /// that settled the write.
    /// </summary>
    public (bool WasPending, bool Settled) MarkApplied(int mirror, long token)
    {
        bool settled;
        lock (_lock)
        {
            if ((_pending & (1 << mirror)) == 0) return (false, false);
            _pending &= ~(1 << mirror);
            _tokens[mirror] = token;
            settled = _pending == 0;
        }
        _appliedOn[mirror].TrySetResult();
        return (true, settled);
    }

    /// <summary>No copy is still waiting to be applied (every one applied, failed or skipped).</summary>
    public bool NothingPending
    {
        get { lock (_lock) return _pending == 0; }
    }

    /// <summary>True when every mirror the write was meant for applied it: only then do the tokens go back.</summary>
    public bool ReachedEveryMirror
    {
        get { lock (_lock) return !_incomplete && _pending == 0; }
    }

    public long TokenOf(int mirror) => _tokens[mirror];
}

/// <summary>The write did not reach this mirror (or, with <paramref name="why"/>, the mirror cannot be relied on to hold it).</summary>
internal sealed class MirrorUnavailableException(string deviceId, string? why = null) : Exception(why ?? $"mirror on device {deviceId} did not receive the write")
{
    public string DeviceId { get; } = deviceId;
}
