using System.Diagnostics;
using System.Text.Json;
using TaggedMirror.Contracts.Bus;
using TaggedMirror.Contracts.TagTable;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Reads;
using TaggedMirror.Controller.Tagging;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting.Events;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>
/// Flow 6, and the range copy full copies (<see cref="FullCopy.FullCopyService"/>) are made of. Copying a range: fence it (new writes to it wait), wait until the source has applied
/// everything sent to it and everything its log holds, read the range from the source, send it to the target
/// as a repair with a new tag through the target's own log (so it lands after the target's earlier writes),
/// wait until the target applied it, release the fence, record the resync. The source is chosen under the fence,
/// for every range anew (<see cref="CopySources"/>): a mirror that itself missed writes could copy a stale range
/// over a newer one.
/// </summary>
internal sealed class ResyncService(
    VolumeCatalog catalog,
    WritePipeline pipeline,
    DeviceReader devices,
    CopySources sources,
    TagGenerator tags,
    EventStreams store,
    ControllerTelemetry telemetry,
    ILogger<ResyncService> logger)
{
    /// <summary>Carries out a request from reconciliation. Repeating a request for a resolved tag does nothing.</summary>
    public async Task ResyncAsync(ResyncRequested r, CancellationToken ct)
    {
        if (catalog.Find(r.Volume) is not { Owned: true } v) return;   // another controller's volume
        if (v.MirrorOn(r.TargetDevice) is not { } target) return;
        if (await AlreadyResyncedAsync(v.Name, r.Tag, r.TargetDevice, ct))
        {
            logger.LogDebug("Resync of {Tag} to {Target} already done", r.Tag, r.TargetDevice);
            return;
        }
        // Linked to the write it repairs (its trace id survives the trip through the tag table).
        var links = KafkaTracing.TryParse(r.TraceParent, out var write) ? new[] { new ActivityLink(write) } : null;
        using var span = telemetry.Source.StartActivity("resync", ActivityKind.Internal, parentContext: default, links: links); // parent: the bus consume span
        span?.SetTag(TelemetryAttributes.Tag, r.Tag);
        await CopyAsync(v, v.MirrorOn(r.SourceDevice), target, r.FirstBlock, r.BlockCount, r.Extension, r.Tag, ct);
    }

    /// <summary>Copies one range under its fence; the source is chosen and checked only once the fence is up. Returns the source's device.</summary>
    public async Task<string> CopyAsync(Volume v, Mirror? preferred, Mirror target, long firstBlock, int blocks, bool extension, string? tag, CancellationToken ct)
    {
        await v.ResyncLock.WaitAsync(ct);
        var started = Stopwatch.GetTimestamp();
        // One span per copied range: fence, choose and wait for the source, read, repair (its produce span is a child).
        using var span = telemetry.Source.StartActivity("copy range");
        if (span is { IsAllDataRequested: true })
        {
            span.SetTag(TelemetryAttributes.Volume, v.Name);
            span.SetTag(TelemetryAttributes.ResyncTarget, target.DeviceId);
            span.SetTag(TelemetryAttributes.FirstBlock, firstBlock);
            span.SetTag(TelemetryAttributes.Blocks, blocks);
            span.SetTag("tm.extension", extension);
        }
        var fence = new RangeFence(firstBlock, blocks);
        try
        {
            lock (v.WriteLock) v.Fences.Add(fence);
            try
            {
                long fenceSeq;
                lock (v.WriteLock) fenceSeq = tags.Issued; // every write up to here was enqueued before the fence
                // A per-tag resync may fall back to copying block by block from the holders of the newest writes.
                var parts = await sources.PlanAsync(v, target, preferred, firstBlock, blocks, perBlockFallback: tag is not null, fenceSeq, ct);
                span?.SetTag(TelemetryAttributes.ResyncSource, string.Join(",", parts.Select(p => p.Source.DeviceId).Distinct()));
                var used = new List<string>();
                if (parts.Count == 0)
                {
                    // The target holds the newest write to every block of the range: nothing to copy, but the
                    // tag counts as repaired there.
                    await RecordAsync(v, new ResyncCompleted(tag, target.DeviceId, target.DeviceId, firstBlock, 0, extension, 0,
                        Stopwatch.GetElapsedTime(started).TotalMilliseconds, RepairTag: ""), ct);
                    logger.LogInformation("Volume {Volume}: {Target} holds newer writes to every block of [{First}, {End}) than {Tag}: nothing to copy",
                        v.Name, target.DeviceId, firstBlock, firstBlock + blocks, tag);
                    return target.DeviceId;
                }
                foreach (var part in parts)
                {
                    var source = part.Source;
                    var data = await devices.ReadAsync(source.DeviceId, source.ObjectId, part.FirstBlock * v.BlockSize, part.Blocks * v.BlockSize, ct)
                        ?? new byte[part.Blocks * v.BlockSize];
                    var repairTag = await pipeline.RepairAsync(v, target, part.FirstBlock, data, ct);
                    var elapsed = Stopwatch.GetElapsedTime(started);
                    span?.SetTag("tm.repair_tag", repairTag.ToString()).SetTag("tm.bytes_copied", data.Length);
                    var volume = new KeyValuePair<string, object?>(TelemetryAttributes.Volume, v.Name);
                    var device = new KeyValuePair<string, object?>(TelemetryAttributes.Device, target.DeviceId);
                    telemetry.Resyncs.Add(1, volume, device);
                    telemetry.ResyncBytes.Add(data.Length, volume, device);
                    await RecordAsync(v, new ResyncCompleted(tag, target.DeviceId, source.DeviceId, part.FirstBlock, part.Blocks, extension, data.Length,
                        elapsed.TotalMilliseconds, repairTag.ToString()), ct);
                    logger.LogInformation("Volume {Volume}: copied blocks [{First}, {End}) from {Source} to {Target} for {Tag} in {Ms:0.0} ms",
                        v.Name, part.FirstBlock, part.FirstBlock + part.Blocks, source.DeviceId, target.DeviceId, tag ?? "full copy", elapsed.TotalMilliseconds);
                    used.Add(source.DeviceId);
                }
                return string.Join(",", used.Distinct(StringComparer.Ordinal));
            }
            finally
            {
                lock (v.WriteLock) v.Fences.Remove(fence);
                fence.Released.TrySetResult();
            }
        }
        finally
        {
            v.ResyncLock.Release();
        }
    }

    private async Task RecordAsync(Volume v, ResyncCompleted done, CancellationToken ct) =>
        await store.AppendAsync(ResyncEventTypes.Stream(v.Name), ExpectedVersion.Any,
            [done], ct);

    private async Task<bool> AlreadyResyncedAsync(string volume, string tag, string target, CancellationToken ct)
    {
        await using var cmd = store.DataSource.CreateCommand(
            $"SELECT EXISTS (SELECT 1 FROM {store.Schema}.resyncs WHERE volume = @v AND tag = @t AND target = @d)");
        cmd.Parameters.AddWithValue("v", volume);
        cmd.Parameters.AddWithValue("t", tag);
        cmd.Parameters.AddWithValue("d", target);
        return (bool)(await cmd.ExecuteScalarAsync(ct))!;
    }
}
