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
}
