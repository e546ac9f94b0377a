using System.Threading.RateLimiting;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>
/// Paces bytes: a token bucket holding one second's worth, refilled every 100 ms; 0 means no limit. The
/// controller's one instance paces every byte resyncs and full copies copy, across its volumes
/// (<see cref="ControllerOptions.ResyncMaxBytesPerSecond"/>, as md's <c>sync_speed_max</c> or DRBD's
/// <c>c-max-rate</c>), so catching up cannot take the logs and devices from the writes going on; a verify
/// paces its reads with one of its own.
/// </summary>
internal sealed class ByteRate : IDisposable
{
    private readonly TokenBucketRateLimiter? _bucket;
    private readonly int _burst;

    public ByteRate(long bytesPerSecond)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytesPerSecond);
        if (bytesPerSecond == 0) return;
        _burst = (int)Math.Min(bytesPerSecond, int.MaxValue);
        _bucket = new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = _burst,
            TokensPerPeriod = Math.Max(1, _burst / 10),
            ReplenishmentPeriod = TimeSpan.FromMilliseconds(100),
            QueueLimit = int.MaxValue,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            AutoReplenishment = true,
        });
    }

    /// <summary>
    /// The most bytes one wait takes in a single grant (a second's worth; no limit: <see cref="long.MaxValue"/>). Work
    /// cut to this size is granted whole and in the order asked; larger requests are granted a bucketful at a time,
    /// interleaved with the other waiters', so several of them all finish near the end together.
    /// </summary>
    public long MaxAtOnce => _bucket is null ? long.MaxValue : _burst;

    /// <summary>Returns once <paramref name="bytes"/> may be copied (at once when there is no limit).</summary>
    public async ValueTask WaitAsync(long bytes, CancellationToken ct)
    {
        if (_bucket is null) return;
        // A request larger than the bucket is taken a bucketful at a time.
        for (var left = bytes; left > 0;)
        {
            var take = (int)Math.Min(left, _burst);
            using var lease = await _bucket.AcquireAsync(take, ct);
            if (!lease.IsAcquired) throw new InvalidOperationException("the byte rate limiter refused a request it should queue");
            left -= take;
        }
    }

    public void Dispose() => _bucket?.Dispose();
}
