using TaggedMirror.Contracts.TagTable;
using TaggedMirror.Controller.Reconciliation;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting.Events;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.FullCopy;

/// <summary>
/// Full copies, where the pieces live: a device whose log was truncated under it records <c>log_truncated</c>, marks
/// its objects and tells the controller (<c>DeviceAgent/Consumption/DeviceConsumer.HandleTruncationAsync</c>,
/// repeated from the record until handled); the owner marks the mirror <c>NeedsFullCopy</c>
/// (<c>Acks/DeviceEventsConsumer</c>); <c>Reconciliation/MirrorMaintenance</c> starts this copy for every mirror so
/// marked; this copies the volume range by range, each range under its fence from a source chosen then
/// (<see cref="ResyncService.CopyAsync"/>), records the copy in <c>full_copies</c> and declares the mirror in sync;
/// the device then clears its own mark (<c>DeviceAgent/TagTable/DeviceRepository.PendingTruncationNoticesAsync</c>).
/// Design notes: docs/design.md, "Truncation".
/// </summary>
internal sealed class FullCopyService(
    VolumeCatalog catalog,
    ResyncService resyncs,
    EventStreams store,
    ControllerOptions options,
    ControllerTelemetry telemetry,
    ILogger<FullCopyService> logger)
{
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
            sources.Add(await resyncs.CopyAsync(v, preferred: null, target, first, n, first >= v.Blocks, tag: null, ct));
            target.FullCopyDone = first + n;
        }
        if (!await RecordFullCopyAsync(target, truncatedAtStart, ct))
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
    /// SQL: the <c>full_copies</c> row aliased <paramref name="alias"/> covers its device's newest <c>log_truncated</c>
    /// (parameters <c>@s</c>, the device's tag-table stream, and <c>@t</c>, the event type). The one statement of the rule.
    /// </summary>
    public static string CoversLatestTruncation(string schema, string alias) =>
        $"{alias}.covers_truncation >= (SELECT coalesce(max(version), 0) FROM {schema}.mt_events WHERE stream_id = @s AND type = @t)";

    /// <summary>True when a full copy of the mirror was recorded that covers its device's latest truncation.</summary>
    public async Task<bool> FullCopyCoversLatestTruncationAsync(Mirror mirror, CancellationToken ct)
    {
        await using var cmd = store.DataSource.CreateCommand($"""
            SELECT EXISTS (SELECT 1 FROM {store.Schema}.full_copies f
                           WHERE f.device_id = @d AND f.object_id = @o AND {CoversLatestTruncation(store.Schema, "f")}
                             AND f.covers_truncation > 0)
            """);
        cmd.Parameters.AddWithValue("d", mirror.DeviceId);
        cmd.Parameters.AddWithValue("o", mirror.ObjectId);
        cmd.Parameters.AddWithValue("s", TagTableEventTypes.Stream(mirror.DeviceId));
        cmd.Parameters.AddWithValue("t", TagTableEventTypes.Truncated);
        return (bool)(await cmd.ExecuteScalarAsync(ct))!;
    }

    /// <summary>
    /// Records that the target's object got a full copy covering the device's truncation <paramref name="truncatedAtStart"/>,
    /// unless the device recorded a newer truncation since: then writes or steps sent during the copy may have
    /// fallen off before it applied them, and the copy must start over. The device's stream row is share-locked
    /// first: a truncation the device records commits either before this reads (and is seen) or after this
    /// commits (and is newer than what this covers, so the device keeps its mark and tells again). The device
    /// clears its own mark from this record; the controller never writes the device's rows.
    /// </summary>
    private async Task<bool> RecordFullCopyAsync(Mirror target, long truncatedAtStart, CancellationToken ct)
    {
        var s = store.Schema;
        await using var conn = await store.DataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using (var lockStream = new Npgsql.NpgsqlCommand($"SELECT 1 FROM {s}.mt_streams WHERE id = @s FOR SHARE", conn, tx))
        {
            lockStream.Parameters.AddWithValue("s", TagTableEventTypes.Stream(target.DeviceId));
            await lockStream.ExecuteNonQueryAsync(ct);
        }
        await using (var newer = new Npgsql.NpgsqlCommand(
            $"SELECT EXISTS (SELECT 1 FROM {s}.mt_events WHERE stream_id = @s AND type = @t AND version > @v)", conn, tx))
        {
            newer.Parameters.AddWithValue("s", TagTableEventTypes.Stream(target.DeviceId));
            newer.Parameters.AddWithValue("t", TagTableEventTypes.Truncated);
            newer.Parameters.AddWithValue("v", truncatedAtStart);
            if ((bool)(await newer.ExecuteScalarAsync(ct))!) return false;
        }
        await using (var record = new Npgsql.NpgsqlCommand($"""
            INSERT INTO {s}.full_copies (device_id, object_id, covers_truncation) VALUES (@d, @o, @v)
            ON CONFLICT (device_id, object_id) DO UPDATE SET covers_truncation = greatest(full_copies.covers_truncation, excluded.covers_truncation),
                completed_at = now()
            """, conn, tx))
        {
            record.Parameters.AddWithValue("d", target.DeviceId);
            record.Parameters.AddWithValue("o", target.ObjectId);
            record.Parameters.AddWithValue("v", truncatedAtStart);
            await record.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
        return true;
    }
}
