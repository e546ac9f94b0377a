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
/// Flow 6 and full copies. Copying a range: fence it (new writes to it wait), wait until the source has applied
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
    ControllerOptions options,
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

    /// <summary>
    /// Copies every block of the volume to <paramref name="target"/>, range by range while writes go on, each
    /// range from a source chosen under that range's fence.
    /// </summary>
    public async Task FullCopyAsync(Volume v, Mirror target, CancellationToken ct)
    {
        // A write that misses the target during the copy must keep it from being declared in sync by this copy.
        var missedAtStart = target.LastSkippedSeq;
        // A truncation the device records after this point may have lost what the copy sent it: see the end.
        var truncatedAtStart = await LatestTruncationAsync(target.DeviceId, ct);
        var total = v.TotalBlocks;
        target.FullCopyTotal = total;
        target.FullCopyDone = 0;
        logger.LogInformation("Volume {Volume}: full copy of {Blocks} blocks to {Target}", v.Name, total, target.DeviceId);
        using var span = telemetry.Source.StartActivity("full copy");
        span?.SetTag(TelemetryAttributes.Volume, v.Name).SetTag(TelemetryAttributes.ResyncTarget, target.DeviceId).SetTag(TelemetryAttributes.Blocks, total);
        var sources = new HashSet<string>(StringComparer.Ordinal);
        // Each step is one repair transaction: it must fit a device-topic message, whatever the block size.
        var step = options.FullCopyStepBlocks(v.BlockSize);
        for (long first = 0; first < total; first += step)
        {
            var n = (int)Math.Min(step, total - first);
            sources.Add(await CopyAsync(v, preferred: null, target, first, n, first >= v.Blocks, tag: null, ct));
            target.FullCopyDone = first + n;
        }
        if (!await ClearFullCopyMarkAsync(target, truncatedAtStart, ct))
            throw new InvalidOperationException($"the log of {target.DeviceId} was truncated again while it was being copied to; the copy starts again");
        await catalog.SetMirrorStateAsync(v, target, MirrorState.InSync,
            $"full copy of {total} blocks from {string.Join(", ", sources.Order(StringComparer.Ordinal))} done", ct, verifiedMissedSeq: missedAtStart);
    }

    /// <summary>The version of the newest truncation the device recorded in its stream (0: none).</summary>
    private async Task<long> LatestTruncationAsync(string deviceId, CancellationToken ct)
    {
        await using var cmd = store.DataSource.CreateCommand(
            $"SELECT coalesce(max(version), 0) FROM {store.Schema}.mt_events WHERE stream_id = @s AND type = @t");
        cmd.Parameters.AddWithValue("s", TagTableEventTypes.Stream(deviceId));
        cmd.Parameters.AddWithValue("t", TagTableEventTypes.Truncated);
        return (long)(await cmd.ExecuteScalarAsync(ct))!;
    }

    /// <summary>
    /// Clears the device's "needs a full copy" mark of the target's object, unless the device recorded a truncation
    /// after <paramref name="truncatedAtStart"/>: then writes or steps sent during the copy may have fallen off
    /// before it applied them, and the mark (set again by the device) must stay. The object's row is locked
    /// first: the device sets the mark and records the truncation in one transaction, so either that transaction
    /// is seen here, or it waits and sets the mark again after this one.
    /// </summary>
    private async Task<bool> ClearFullCopyMarkAsync(Mirror target, long truncatedAtStart, CancellationToken ct)
    {
        var s = store.Schema;
        await using var conn = await store.DataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using (var lockRow = new Npgsql.NpgsqlCommand(
            $"SELECT 1 FROM {s}.device_objects WHERE device_id = @d AND object_id = @o FOR UPDATE", conn, tx))
        {
            lockRow.Parameters.AddWithValue("d", target.DeviceId);
            lockRow.Parameters.AddWithValue("o", target.ObjectId);
            await lockRow.ExecuteNonQueryAsync(ct);
        }
        await using (var newer = new Npgsql.NpgsqlCommand(
            $"SELECT EXISTS (SELECT 1 FROM {s}.mt_events WHERE stream_id = @s AND type = @t AND version > @v)", conn, tx))
        {
            newer.Parameters.AddWithValue("s", TagTableEventTypes.Stream(target.DeviceId));
            newer.Parameters.AddWithValue("t", TagTableEventTypes.Truncated);
            newer.Parameters.AddWithValue("v", truncatedAtStart);
            if ((bool)(await newer.ExecuteScalarAsync(ct))!) return false;
        }
        await using (var clear = new Npgsql.NpgsqlCommand(
            $"UPDATE {s}.device_objects SET needs_full_copy = false WHERE device_id = @d AND object_id = @o", conn, tx))
        {
            clear.Parameters.AddWithValue("d", target.DeviceId);
            clear.Parameters.AddWithValue("o", target.ObjectId);
            await clear.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
        return true;
    }

    /// <summary>Copies one range under its fence; the source is chosen and checked only once the fence is up. Returns the source's device.</summary>
    private async Task<string> CopyAsync(Volume v, Mirror? preferred, Mirror target, long firstBlock, int blocks, bool extension, string? tag, CancellationToken ct)
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
