using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// Runs <c>count</c> operations keeping <c>concurrency</c> in flight: each worker starts its next operation as soon as
/// its last one completes. Latencies go into a preallocated array indexed by operation, so the loop allocates nothing of its own.
/// </summary>
internal static class ClosedLoop
{
    /// <summary>Returns the elapsed seconds from the first start to the last completion; the first failure stops the run and is rethrown.</summary>
    public static async Task<double> RunAsync(int count, int concurrency, long[] latencyTicks, Func<int, CancellationToken, Task> operation, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(latencyTicks.Length, count);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var next = -1;
        var start = Stopwatch.GetTimestamp();

        async Task WorkerAsync()
        {
            await Task.Yield();
            int i;
            while ((i = Interlocked.Increment(ref next)) < count && !stop.IsCancellationRequested)
            {
                var t0 = Stopwatch.GetTimestamp();
                try
                {
                    await operation(i, stop.Token);
                }
                catch
                {
                    await stop.CancelAsync();
                    throw;
                }
                latencyTicks[i] = Stopwatch.GetTimestamp() - t0;
            }
        }

        var workers = new Task[Math.Min(concurrency, count)];
        for (var w = 0; w < workers.Length; w++) workers[w] = WorkerAsync();
        try
        {
            await Task.WhenAll(workers);
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            // One worker's failure cancelled the others: report the failure, not the cancellations.
            var failure = workers.Select(t => t.Exception?.InnerException).FirstOrDefault(e => e is not null and not OperationCanceledException);
            if (failure is not null) ExceptionDispatchInfo.Throw(failure);
            throw;
        }
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }
}
