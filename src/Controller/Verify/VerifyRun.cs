using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Controller.Verify;

/// <summary>One verify of one volume as it goes: what <c>GET /volumes/{name}/verify</c> answers.</summary>
internal sealed class VerifyRun(string id, string volume, bool repair, int rangeBlocks, long maxBytesPerSecond)
{
    private readonly Lock _lock = new();
    private readonly List<VerifyMismatch> _mismatches = [];
    private readonly DateTimeOffset _started = DateTimeOffset.UtcNow;
    private long _rangesTotal;
    private long _rangesDone;
    private long _rangesSkipped;
    private long _blocks;
    private long _bytesRepaired;
    private DateTimeOffset? _finished;
    private string? _error;

    public string Id { get; } = id;

    public bool Repair { get; } = repair;

    public int RangeBlocks { get; } = rangeBlocks;

    public long MaxBytesPerSecond { get; } = maxBytesPerSecond;

    public bool Running
    {
        get { lock (_lock) return _finished is null; }
    }

    public void Begin(long ranges)
    {
        lock (_lock) _rangesTotal = ranges;
    }

    public void RangeDone(long blocks)
    {
        lock (_lock)
        {
            _rangesDone++;
            _blocks += blocks;
        }
    }

    /// <summary>No mirror could be checked in the range (none current, or none reachable).</summary>
    public void RangeSkipped()
    {
        lock (_lock)
        {
            _rangesDone++;
            _rangesSkipped++;
        }
    }

    public void Add(VerifyMismatch m)
    {
        lock (_lock) _mismatches.Add(m);
    }

    public void Repaired(long bytes)
    {
        lock (_lock) _bytesRepaired += bytes;
    }

    public void Finish(string? error)
    {
        lock (_lock)
        {
            _error = error;
            _finished = DateTimeOffset.UtcNow;
        }
    }

    public VerifyReport Report()
    {
        lock (_lock)
        {
            var state = _finished is null ? "running" : _error is null ? "done" : "failed";
            return new VerifyReport(Id, volume, state, Repair, RangeBlocks, _rangesTotal, _rangesDone, _blocks, _rangesSkipped,
                [.. _mismatches], _bytesRepaired, _started, _finished, _error);
        }
    }
}
