using MassTransit;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Bus;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller.Acks;

/// <summary>Acknowledgements and reports from device agents, off the bus.</summary>
internal sealed class DeviceEventsConsumer(WritePipeline pipeline, DeviceLog log, VolumeCatalog catalog, ILogger<DeviceEventsConsumer> logger)
    : IConsumer<DeviceApplied>, IConsumer<DeviceLogTruncated>, IConsumer<TransactionDeadLettered>
{
    public Task Consume(ConsumeContext<DeviceApplied> context)
    {
        var m = context.Message;
        foreach (var e in m.Entries)
        {
            if (Tag.TryParse(e.Tag, out var tag))
                pipeline.OnApplied(m.DeviceId, tag, e.Token);
        }
        log.Channel(m.DeviceId).RecordOffsets(m.Offsets.Select(o => (o.Partition, o.NextOffset)));
        return Task.CompletedTask;
    }

    public async Task Consume(ConsumeContext<DeviceLogTruncated> context)
    {
        var m = context.Message;
        foreach (var v in catalog.All)
        {
            if (v.MirrorOn(m.DeviceId) is not { } mirror) continue;
            if (mirror.State == MirrorState.NeedsFullCopy) continue;
            // What fell off the log will never be applied there: nothing may wait for it. Before the state
            // change, which is what starts the full copy.
            if (v.Owned) pipeline.OnMirrorLost(v, mirror);
            await catalog.SetMirrorStateAsync(v, mirror, MirrorState.NeedsFullCopy,
                $"device {m.DeviceId} needed offset {m.ExpectedOffset} of partition {m.Partition}, the log starts at {m.LogStartOffset}", context.CancellationToken);
        }
    }

    public Task Consume(ConsumeContext<TransactionDeadLettered> context)
    {
        var m = context.Message;
        logger.LogWarning("Device {Device} refused {Partition}@{Offset}: {Reason}", m.DeviceId, m.Partition, m.Offset, m.Reason);
        return Task.CompletedTask;
    }
}
