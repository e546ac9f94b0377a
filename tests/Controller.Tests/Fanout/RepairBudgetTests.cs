using TaggedMirror.Controller.Fanout;

namespace TaggedMirror.Controller.Tests.Fanout;

public sealed class RepairBudgetTests
{
    [Fact]
    public async Task one_repair_goes_whatever_its_size_and_the_next_waits_for_room()
    {
        var budget = new RepairBudget(100);
        var big = await budget.EnterAsync(500, CancellationToken.None);
        var next = budget.EnterAsync(10, CancellationToken.None).AsTask();
        Assert.False(next.IsCompleted);
        big.Dispose();
        (await next).Dispose();
        Assert.Equal(0, budget.BytesInFlight);
    }

    [Fact]
    public async Task small_repairs_share_the_budget_and_waiters_go_in_arrival_order()
    {
        var budget = new RepairBudget(100);
        var a = await budget.EnterAsync(40, CancellationToken.None);
        var b = await budget.EnterAsync(60, CancellationToken.None);
        Assert.Equal(100, budget.BytesInFlight);
        var large = budget.EnterAsync(90, CancellationToken.None).AsTask();
        var small = budget.EnterAsync(10, CancellationToken.None).AsTask();
        a.Dispose();
        // 40 bytes free: the small one would fit, but the large one came first.
        Assert.False(large.IsCompleted);
        Assert.False(small.IsCompleted);
        b.Dispose();
        var l = await large;
        var s = await small;
        Assert.Equal(100, budget.BytesInFlight);
        l.Dispose();
        s.Dispose();
        s.Dispose(); // twice is once
        Assert.Equal(0, budget.BytesInFlight);
    }

    [Fact]
    public async Task a_waiter_cancelled_leaves_no_trace_and_lets_the_next_in()
    {
        var budget = new RepairBudget(100);
        var a = await budget.EnterAsync(80, CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var cancelled = budget.EnterAsync(50, cancel.Token).AsTask();
        var after = budget.EnterAsync(20, CancellationToken.None).AsTask();
        Assert.False(after.IsCompleted);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        (await after).Dispose();
        a.Dispose();
        Assert.Equal(0, budget.BytesInFlight);
    }

    [Fact]
    public async Task many_concurrent_repairs_never_exceed_the_budget_beyond_one()
    {
        var budget = new RepairBudget(1000);
        var peak = 0L;
        var peakLock = new Lock();
        await Parallel.ForEachAsync(Enumerable.Range(0, 400), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
        {
            var bytes = (long)Random.Shared.Next(1, 600);
            using (await budget.EnterAsync(bytes, ct))
            {
                lock (peakLock) peak = Math.Max(peak, budget.BytesInFlight);
                await Task.Yield();
            }
        });
        Assert.InRange(peak, 1, 1000);
        Assert.Equal(0, budget.BytesInFlight);
    }
}
