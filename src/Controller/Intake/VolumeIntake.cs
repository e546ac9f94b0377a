using System.Threading.Channels;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Intake;

/// <summary>
/// One owned volume's intake: its requests in log order, handled one step (up to a batch) at a time by
/// <see cref="RequestHandler"/>. A step that cannot go on keeps its requests and is tried again after a pause;
/// other volumes' intakes go on meanwhile. The read-ahead is bounded: past <see cref="IntakeOptions.QueueLimit"/> the
/// poll loop drops this volume's messages and reads them again once the queue is empty.
/// </summary>
internal sealed class VolumeIntake(string name, int queueLimit)
{
    private readonly Channel<IntakeMessage> _queue = Channel.CreateBounded<IntakeMessage>(
        new BoundedChannelOptions(queueLimit) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly CancellationTokenSource _stop = new();
    private int _held;

    public string Name { get; } = name;

    /// <summary>Per partition: every message of this volume below it is answered (as committed). The worker's only.</summary>
    public Dictionary<int, long> Positions { get; } = [];

    /// <summary>Per partition: the next offset the poll loop hands over. The poll loop's only.</summary>
    public Dictionary<int, long> Dispatched { get; } = [];

    /// <summary>Partitions whose messages were dropped (queue full) and must be read again. The poll loop's only.</summary>
    public HashSet<int> Overflowed { get; } = [];

    /// <summary>The owner epoch under which every mirror was last shown to have applied its whole log (0: not since a write of unknown fate).</summary>
    public long CaughtUpOwnerEpoch { get; set; }

    /// <summary>Nothing queued and nothing being worked on.</summary>
    public bool Idle => Volatile.Read(ref _held) == 0;

    public bool Stopped { get; private set; }

    public bool Offer(IntakeMessage m)
    {
        if (!_queue.Writer.TryWrite(m)) return false;
        Interlocked.Increment(ref _held);
        return true;
    }

    public void Stop()
    {
        Stopped = true;
        _stop.Cancel();
    }

    public Task RunAsync(RequestHandler handler, IntakeOptions options, IntakeTelemetry telemetry, ILogger logger, CancellationToken stopping)
    {
        var ct = CancellationTokenSource.CreateLinkedTokenSource(stopping, _stop.Token).Token;
        return Task.Run(() => LoopAsync(handler, options, telemetry, logger, ct), CancellationToken.None);
    }

    private async Task LoopAsync(RequestHandler handler, IntakeOptions options, IntakeTelemetry telemetry, ILogger logger, CancellationToken ct)
    {
        var items = new List<IntakeMessage>();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                if (items.Count == 0 && !await _queue.Reader.WaitToReadAsync(ct)) return;
                while (items.Count < options.BatchSize && _queue.Reader.TryRead(out var m)) items.Add(m);
                RequestHandler.StepResult step;
                try
                {
                    step = await handler.HandleAsync(this, items, ct);
                }
                catch (Exception ex) when (!ct.IsCancellationRequested)
                {
                    // Nothing of the step counts (its writes are pending and looked for next time): try again.
                    CaughtUpOwnerEpoch = 0;
                    step = new RequestHandler.StepResult(0, ex.Message, Lost: false);
                }
                if (step.Lost)
                {
                    logger.LogInformation("Intake: volume {Volume} is no longer this controller's; its intake stops", Name);
                    Stopped = true;
                    return;
                }
                items.RemoveRange(0, step.Completed);
                Interlocked.Add(ref _held, -step.Completed);
                if (step.Wait is not null)
                {
                    telemetry.Waits.Add(1, new KeyValuePair<string, object?>(TelemetryAttributes.Volume, Name));
                    logger.LogWarning("Intake: volume {Volume} waits, {Pending} requests held: {Reason}", Name, items.Count, step.Wait);
                    await Task.Delay(options.RetryInterval, ct);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            Stopped = true;
        }
    }
}
