using System.Collections.Concurrent;

namespace TaggedMirror.Hosting;

/// <summary>
/// One run at a time per key: a caller that arrives while a run for its key is in progress shares that run's answer
/// (or its exception); one that arrives after it ended starts the next. For queries that many callers need at once and
/// that may be a little older than the caller (an API key, a device's applied offsets, a device's address): asked on
/// their own, each on a connection of its own, hundreds of them took every connection PostgreSQL allows.
/// </summary>
/// <remarks>
/// A run is given no caller's token (others share it): each caller stops waiting on its own with
/// <see cref="Task.WaitAsync(CancellationToken)"/>. Nothing is kept once a run ends; caching, if any, is the caller's.
/// </remarks>
public sealed class SingleFlight<TKey, T>(IEqualityComparer<TKey>? comparer = null)
    where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, Task<T>> _running = new(comparer);

    /// <summary>The answer of the run for <paramref name="key"/> in progress, or of <paramref name="run"/> started now.</summary>
    public Task<T> RunAsync(TKey key, Func<TKey, Task<T>> run, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(run);
        while (true)
        {
            if (_running.TryGetValue(key, out var running)) return running.WaitAsync(ct);
            var answer = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_running.TryAdd(key, answer.Task)) continue;   // another caller started one first: share it
            _ = RunOnceAsync(key, run, answer);
            return answer.Task.WaitAsync(ct);
        }
    }

    private async Task RunOnceAsync(TKey key, Func<TKey, Task<T>> run, TaskCompletionSource<T> answer)
    {
        T result = default!;
        Exception? failure = null;
        try
        {
            result = await run(key).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            failure = ex;
        }
        // Removed before it is answered: a caller that has seen the answer and asks again starts the next run, never
        // gets this one's answer a second time.
        _running.TryRemove(KeyValuePair.Create(key, answer.Task));
        if (failure is null) answer.TrySetResult(result);
        else answer.TrySetException(failure);
    }
}
