namespace TaggedMirror.Nbd.Server;

/// <summary>
/// At most <c>perSecond</c> log lines in any second (windows of one second from the first line); the lines held back
/// are counted, and the next line let through says how many there were.
/// </summary>
internal sealed class LogBudget(int perSecond, TimeProvider time)
{
    private readonly Lock _lock = new();
    private long _windowStart = long.MinValue;
    private int _used;
    private long _held;

    /// <summary>True when a line may be logged now, with <paramref name="held"/> the lines held back since the last one let through.</summary>
    public bool TryTake(out long held)
    {
        lock (_lock)
        {
            var now = time.GetTimestamp();
            if (_windowStart == long.MinValue || time.GetElapsedTime(_windowStart, now) >= TimeSpan.FromSeconds(1))
            {
                _windowStart = now;
                _used = 0;
            }
            if (_used >= perSecond)
            {
                _held++;
                held = 0;
                return false;
            }
            _used++;
            held = _held;
            _held = 0;
            return true;
        }
    }
}
