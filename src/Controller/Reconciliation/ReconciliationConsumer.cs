using MassTransit;
using TaggedMirror.Contracts.Bus;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>Reconciliation's requests to retire entries, for the volumes this controller owns (resyncs: <see cref="ResyncBatchConsumer"/>).</summary>
internal sealed class ReconciliationConsumer(VolumeCatalog catalog, DeviceLog log, WritePipeline pipeline)
    : IConsumer<RetireEntries>
{
    public Task Consume(ConsumeContext<RetireEntries> context)
    {
        if (catalog.Find(context.Message.Volume) is not { Owned: true }) return Task.CompletedTask;
        foreach (var e in context.Message.Entries)
        {
            // Every mirror has the write: if its acknowledgement was lost (the bus was down), this is the proof
            // that settles it, so nothing waits for it and its bytes leave the flow-control backlog.
            if (Contracts.Tag.TryParse(e.Tag, out var tag)) pipeline.OnApplied(e.DeviceId, tag, e.Token);
            log.Channel(e.DeviceId).Tokens.Enqueue(e.Token);
        }
        return Task.CompletedTask;
    }
}
