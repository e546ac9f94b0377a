using MassTransit;
using TaggedMirror.Contracts.Bus;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>Reconciliation's requests, for the volumes this controller owns.</summary>
internal sealed class ReconciliationConsumer(ResyncService resyncs, VolumeCatalog catalog, DeviceLog log, ILogger<ReconciliationConsumer> logger)
    : IConsumer<ResyncRequested>, IConsumer<RetireEntries>
{
    public async Task Consume(ConsumeContext<ResyncRequested> context)
    {
        try
        {
            await resyncs.ResyncAsync(context.Message, context.CancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Reconciliation asks again for a request that was not carried out.
            logger.LogWarning("Resync of {Tag} to {Target} not done now: {Reason}", context.Message.Tag, context.Message.TargetDevice, ex.Message);
        }
    }

    public Task Consume(ConsumeContext<RetireEntries> context)
    {
        if (catalog.Find(context.Message.Volume) is not { Owned: true }) return Task.CompletedTask;
        foreach (var e in context.Message.Entries)
            log.Channel(e.DeviceId).EnqueueToken(e.Token);
        return Task.CompletedTask;
    }
}
