using TaggedMirror.Controller.Reconciliation;

namespace TaggedMirror.Controller.Tests.Reconciliation;

/// <summary>
/// Reconciliation's decisions at most once per interval: a batch inside the interval skips them, and they are owed
/// (to the decision loop) only once that batch committed, never lost.
/// </summary>
public sealed class DecisionPacingTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(300);

    [Fact]
    public void the_first_batch_decides_and_one_inside_the_interval_skips_and_owes_them_once_committed()
    {
        var pacing = new ReconciliationProjection.DecisionPacing(Interval);
        Assert.True(pacing.TryBegin());
        Assert.False(pacing.Committed());
        Assert.Null(pacing.OwedIn());

        Assert.False(pacing.TryBegin());
        // Not owed before the skipping batch committed: run now, the decisions would not see what it records.
        Assert.Null(pacing.OwedIn());
        Assert.True(pacing.Committed());
        var owedIn = pacing.OwedIn();
        Assert.NotNull(owedIn);
        Assert.InRange(owedIn.Value, TimeSpan.Zero, Interval);

        pacing.Ran();
        Assert.Null(pacing.OwedIn());
        Assert.False(pacing.Committed());
    }

    [Fact]
    public async Task owed_decisions_are_due_once_the_interval_since_the_last_has_passed()
    {
        var pacing = new ReconciliationProjection.DecisionPacing(Interval);
        Assert.True(pacing.TryBegin());
        Assert.False(pacing.TryBegin());
        Assert.True(pacing.Committed());
        await Task.Delay(Interval + TimeSpan.FromMilliseconds(50));
        Assert.Equal(TimeSpan.Zero, pacing.OwedIn());
        // A batch after the interval decides itself, which pays what was owed.
        Assert.True(pacing.TryBegin());
        Assert.Null(pacing.OwedIn());
    }

    [Fact]
    public void a_batch_that_skipped_and_failed_leaves_them_owed_after_the_next_commit()
    {
        var pacing = new ReconciliationProjection.DecisionPacing(Interval);
        Assert.True(pacing.TryBegin());
        Assert.False(pacing.TryBegin()); // this batch's transaction rolls back: no commit
        Assert.False(pacing.TryBegin()); // retried, skipped again
        Assert.True(pacing.Committed());
        Assert.NotNull(pacing.OwedIn());
    }

    [Fact]
    public void a_zero_interval_decides_after_every_batch()
    {
        var pacing = new ReconciliationProjection.DecisionPacing(TimeSpan.Zero);
        for (var i = 0; i < 5; i++)
        {
            Assert.True(pacing.TryBegin());
            Assert.False(pacing.Committed());
        }
        Assert.Null(pacing.OwedIn());
    }

    [Theory]
    [InlineData(5000, 200, 1000)] // the defaults: once a second
    [InlineData(1000, 200, 250)]  // a short grace period: a quarter of it
    [InlineData(1000, 500, 500)]  // never more often than the other decisions
    [InlineData(600, 0, 150)]
    [InlineData(0, 0, 0)]         // no grace period, no pacing: with every decision
    [InlineData(60000, 2000, 2000)] // a decision interval above a second: with every decision
    [InlineData(86400000, 5000, 5000)]
    public void lost_tokens_are_looked_for_every_quarter_of_the_grace_period_between_the_decision_interval_and_a_second(int graceMs, int decideMs, int expectedMs)
    {
        var options = new ControllerOptions
        {
            RetireMatchedAfter = TimeSpan.FromMilliseconds(graceMs),
            DecideInterval = TimeSpan.FromMilliseconds(decideMs),
        };
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs), ReconciliationProjection.RetireLostEvery(options));
    }

    [Fact]
    public async Task every_is_due_at_once_then_not_again_before_its_interval()
    {
        var every = new ReconciliationProjection.Every(Interval);
        Assert.True(every.Due());
        Assert.False(every.Due());
        await Task.Delay(Interval + TimeSpan.FromMilliseconds(50));
        Assert.True(every.Due());
        Assert.False(every.Due());
    }
}
