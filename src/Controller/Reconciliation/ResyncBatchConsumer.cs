using MassTransit;
using TaggedMirror.Contracts.Bus;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>
/// Reconciliation's resync requests, taken in batches (MassTransit's batch consumer: until none arrived for
/// <see cref="TimeLimit"/>, up to <see cref="MessageLimit"/>) so the writes a mirror missed are coalesced
/// and copied in parallel (<see cref="ResyncService"/>). The batch is acknowledged once carried out; what was not
/// carried out, reconciliation asks again.
/// </summary>
internal sealed class ResyncBatchConsumer(ResyncService resyncs, ILogger<ResyncBatchConsumer> logger) : IConsumer<Batch<ResyncRequested>>
{
    public const int MessageLimit = 500;

    public static readonly TimeSpan TimeLimit = TimeSpan.FromMilliseconds(50);

    public async Task Consume(ConsumeContext<Batch<ResyncRequested>> context)
    {
        try
        {
            await resyncs.ResyncAsync([.. context.Message.Select(m => m.Message)], context.CancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Reconciliation asks again for a request that was not carried out.
            logger.LogWarning("Resync of {Count} requests not done now: {Reason}", context.Message.Length, ex.Message);
        }
    }
}
