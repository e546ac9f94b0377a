using MassTransit;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Bus;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.FullCopy;
using TaggedMirror.Controller.Tagging;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller.Acks;

/// <summary>Acknowledgements and reports from device agents, off the bus.</summary>
internal sealed class DeviceEventsConsumer(
    WritePipeline pipeline, DeviceLog log, VolumeCatalog catalog, TagGenerator tags, FullCopyService fullCopies, ILogger<DeviceEventsConsumer> logger)
    : IConsumer<DeviceApplied>, IConsumer<DeviceLogTruncated>, IConsumer<TransactionDeadLettered>, IConsumer<DeviceFaulted>
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
        // Only the owner records anything for a volume; the device repeats the notice until its owner handled it.
        // One volume taken over meanwhile must not keep the others from being handled.
        foreach (var v in catalog.All)
        {
            if (!v.Owned || v.MirrorOn(m.DeviceId) is not { } mirror) continue;
            if (mirror.State == MirrorState.NeedsFullCopy)
            {
                // Being copied to already. A repeat changes nothing; a new truncation (the log moved past the
                // device again) lost what was sent below its new start: nothing may wait for that (the copy's
                // step in flight then fails and the copy starts again; it could not finish anyway, see
                // FullCopy/FullCopyService).
                pipeline.OnTruncated(v, mirror, m.Partition, m.LogStartOffset);
                continue;
            }
            // Sent before the full copy that covers it was recorded, and delivered after: the device stops telling
            // once it sees the record, and copying again would be work for nothing.
            if (await fullCopies.FullCopyCoversLatestTruncationAsync(mirror, context.CancellationToken)) continue;
            // What fell off the log will never be applied there: nothing may wait for it. Before the state
            // change, which is what starts the full copy.
            pipeline.OnMirrorLost(v, mirror);
            try
            {
                await catalog.SetMirrorStateAsync(v, mirror, MirrorState.NeedsFullCopy,
                    $"device {m.DeviceId} needed offset {m.ExpectedOffset} of partition {m.Partition}, the log starts at {m.LogStartOffset}", context.CancellationToken);
            }
            catch (VolumeTakenOverException)
            {
                // Its new owner handles the notice.
            }
        }
    }

    public async Task Consume(ConsumeContext<TransactionDeadLettered> context)
    {
        var m = context.Message;
        logger.LogWarning("Device {Device} refused {Partition}@{Offset} ({Tag}): {Reason}", m.DeviceId, m.Partition, m.Offset, m.Tag ?? "no tag", m.Reason);
        // Without a readable header there is no tag to trust: nothing of ours can be settled by it.
        if (Tag.TryParse(m.Tag, out var tag))
            await pipeline.OnDeadLetteredAsync(m.DeviceId, tag, m.Reason);
    }

    /// <summary>
    /// The device cannot apply (disk full, failing disk) and retries; it repeats this at every attempt. Its in-sync
    /// mirrors are degraded (out of reads; nothing waits for them); mirrors already out of sync only have their
    /// waiting writes settled, so a repeated report does not flip their state again. Either way the mirror may
    /// not be declared in sync before the device passed a barrier covering every write issued so far: the writes
    /// settled here without it were never skipped, so nothing else would make it wait for them, and reads would
    /// go to a device that has not applied them.
    /// </summary>
    public async Task Consume(ConsumeContext<DeviceFaulted> context)
    {
        var m = context.Message;
        logger.LogWarning("Device {Device} faulted since {Since}: {Reason}", m.DeviceId, m.Since, m.Reason);
        foreach (var v in catalog.All)
        {
            if (!v.Owned || v.MirrorOn(m.DeviceId) is not { } mirror) continue;
            mirror.MarkMissed(tags.Issued);
            try
            {
                if (mirror.State == MirrorState.InSync)
                    await pipeline.DegradeAsync(v, mirror, $"device {m.DeviceId} faulted: {m.Reason}");
                else
                    pipeline.OnMirrorLost(v, mirror);
            }
            catch (WriteFailedException ex)
            {
                // Taken over meanwhile, or PostgreSQL away: the device reports again at its next attempt.
                logger.LogWarning("Volume {Volume}: {Reason}", v.Name, ex.Message);
            }
        }
    }
}
