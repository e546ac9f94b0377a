using Npgsql;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Reconciliation;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Controller.Status;

/// <summary>
/// Builds volume status: mirror states, live tag-table entries per device (from PostgreSQL), device lag
/// (log end minus the offset the device has recorded as applied), full-copy progress and resyncs.
/// </summary>
internal sealed class StatusService(EventStreams store, DeviceLog log, LogProgress progress, Verify.VerifyService verify)
{
    public async Task<VolumeStatus> GetAsync(Volume v, CancellationToken ct)
    {
        var live = new Dictionary<string, long>(StringComparer.Ordinal);
        try
        {
            await using var cmd = store.DataSource.CreateCommand(
                $"SELECT device_id, count(*) FROM {store.Schema}.tag_table WHERE object_id = ANY(@o) GROUP BY device_id");
            cmd.Parameters.AddWithValue("o", v.Mirrors.Select(m => m.ObjectId).ToArray());
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) live[r.GetString(0)] = r.GetInt64(1);
        }
        catch (PostgresException ex) when (ForeignTables.IsMissing(ex))
        {
            // No device agent has started yet: no live entries.
        }
        var mirrors = new List<MirrorStatus>();
        foreach (var m in v.Mirrors)
        {
            var channel = log.Channel(m.DeviceId);
            var (end, done) = await LagAsync(m.DeviceId, ct);
            mirrors.Add(new MirrorStatus(m.DeviceId, m.ObjectId, m.State.ToString(), m.Reason, live.GetValueOrDefault(m.DeviceId),
                channel.UnappliedBytes, channel.Tokens.Count, end, done, Math.Max(0, end - done), m.FullCopyDone, m.FullCopyTotal, m.Replaces));
        }
        return new VolumeStatus(v.Name, v.BlockSize, v.Blocks, v.ExtensionBlocks, v.MinMirrors, v.Owned,
            Interlocked.Read(ref v.WritesAccepted), Interlocked.Read(ref v.BytesAccepted), v.Inflight.Count, [.. mirrors], await ResyncsAsync(v, ct), verify.Latest(v.Name));
    }

    private async Task<ResyncSummary> ResyncsAsync(Volume v, CancellationToken ct)
    {
        long count = 0, bytes = 0;
        await using (var cmd = store.DataSource.CreateCommand($"SELECT count(*), coalesce(sum(bytes), 0) FROM {store.Schema}.resyncs WHERE volume = @v"))
        {
            cmd.Parameters.AddWithValue("v", v.Name);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            await r.ReadAsync(ct);
            count = r.GetInt64(0);
            bytes = r.GetInt64(1);
        }
        var recent = new List<ResyncRecord>();
        await using (var cmd = store.DataSource.CreateCommand($"""
            SELECT tag, source, target, first_block, block_count, extension, bytes, duration_ms, completed_at
            FROM {store.Schema}.resyncs WHERE volume = @v ORDER BY id DESC LIMIT 10
            """))
        {
            cmd.Parameters.AddWithValue("v", v.Name);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                recent.Add(new ResyncRecord(r.IsDBNull(0) ? null : r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3), r.GetInt32(4),
                    r.GetBoolean(5), r.GetInt64(6), r.GetDouble(7), r.GetFieldValue<DateTimeOffset>(8)));
            }
        }
        return new ResyncSummary(count, bytes, [.. recent]);
    }

    private async Task<(long End, long Applied)> LagAsync(string deviceId, CancellationToken ct) =>
        progress.Lag(log.Channel(deviceId), await progress.AppliedAsync(deviceId, ct));
}
