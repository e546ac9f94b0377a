using Marten;
using Marten.Services;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>
/// Wakes what acts on reconciliation's results as soon as Marten's daemon commits one of its batches: the outbox
/// publisher (decisions to publish), the mirrors' maintenance (a resyncing mirror may be in sync now), and the
/// decision loop when the batch left its decisions for later. Their timers stay as the fallback; this only takes
/// their wait off the time to converge after an outage.
/// </summary>
internal sealed class ReconciliationCommits(ReconciliationProjection.DecisionPacing pacing) : IChangeListener
{
    public Wakeup Outbox { get; } = new();

    public Wakeup Maintenance { get; } = new();

    /// <summary>Signalled when a committed batch skipped the decisions (<see cref="ControllerOptions.DecideInterval"/>).</summary>
    public Wakeup Decisions { get; } = new();

    public Task AfterCommitAsync(IDocumentSession session, IChangeSet commit, CancellationToken token)
    {
        Outbox.Signal();
        Maintenance.Signal();
        if (pacing.Committed()) Decisions.Signal();
        return Task.CompletedTask;
    }

    public Task BeforeCommitAsync(IDocumentSession session, IChangeSet commit, CancellationToken token) => Task.CompletedTask;
}

/// <summary>A wait that ends at a signal or after a time, whichever comes first; a signal given while nobody waits ends the next wait at once.</summary>
internal sealed class Wakeup
{
    private TaskCompletionSource _signalled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Signal() => Volatile.Read(ref _signalled).TrySetResult();

    /// <summary>Waits for a signal, at most <paramref name="timeout"/>; a signal consumed here wakes nobody else.</summary>
    public async Task WaitAsync(TimeSpan timeout, CancellationToken ct)
    {
        var current = Volatile.Read(ref _signalled);
        try
        {
            await current.Task.WaitAsync(timeout, ct);
        }
        catch (TimeoutException)
        {
        }
        // Reset before the caller acts: a signal given while it acts ends its next wait at once.
        if (current.Task.IsCompleted)
            Interlocked.CompareExchange(ref _signalled, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), current);
    }
}
