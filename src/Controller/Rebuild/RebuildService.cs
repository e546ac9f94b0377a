using System.Globalization;
using System.Text.Json;
using Npgsql;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Controller.Reads;
using TaggedMirror.Controller.Verify;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Controller.Rebuild;

/// <summary>
/// <c>tm rebuild &lt;device&gt;</c>: a device's objects deleted and rebuilt by replaying its log, while writes go on.
/// The controller records every mirror on the device as <see cref="MirrorState.Rebuilding"/> (not read, not a copy
/// source, receiving writes) before it asks the device to begin; the device wipes and replays
/// (<c>DeviceAgent/Consumption/DeviceConsumer</c>, recorded in <c>device_rebuilds</c>, resumable); once the replay
/// is done each mirror resyncs like one that was away (a full copy where the log no longer held its start); once all
/// are in sync a verify of each volume compares the rebuilt device's checksums with its peers' and repairs what
/// differs. The phases are kept in <c>rebuilds</c>, so a controller that restarts carries on where it was.
/// Design notes: docs/design.md, "Rebuilding a device from its log".
/// </summary>
internal sealed class RebuildService(
    VolumeCatalog catalog, DeviceReader devices, VerifyService verify, EventStreams store, ILogger<RebuildService> logger) : BackgroundService
{
    private const string Replaying = "replaying";
    private const string CatchingUp = "catching-up";
    private const string Verifying = "verifying";
    private const string Done = "done";

    private readonly SemaphoreSlim _starts = new(1, 1);
    private DateTime _lastAskFailureLogged;

    /// <summary>Begins a rebuild of <paramref name="deviceId"/>, or says why not (<see cref="RebuildRefusedException"/>).</summary>
    public async Task<DeviceRebuildReport> StartAsync(string deviceId, CancellationToken ct)
    {
        await _starts.WaitAsync(ct);
        try
        {
            // With no change of a volume's shape under way: a detach of the other mirror, or an attach of this device,
            // checked at the same time as this, would each be allowed by the state the other is about to change.
            DeviceRebuildReport? report = null;
            await catalog.WithoutChangesAsync(async () => report = await StartLockedAsync(deviceId, ct), ct);
            return report!;
        }
        finally
        {
            _starts.Release();
        }
    }

    private async Task<DeviceRebuildReport> StartLockedAsync(string deviceId, CancellationToken ct)
    {
        if (!Names.IsValid(deviceId)) throw new RebuildRefusedException(400, $"'{deviceId}' is not a device name");
        if (!await DeviceRegisteredAsync(deviceId, ct)) throw new RebuildRefusedException(404, $"no device named {deviceId} has registered");
        if (await LatestAsync(deviceId, ct) is { Phase: not (Done or "failed") } running)
            throw new RebuildRefusedException(409, $"rebuild {running.Id} of {deviceId} is {running.Phase}: GET /devices/{deviceId}/rebuild");
        var volumes = catalog.All.Where(v => v.MirrorOn(deviceId) is not null).ToList();
        if (volumes.Count == 0) throw new RebuildRefusedException(409, $"device {deviceId} holds no mirror of any volume: nothing to rebuild");
        foreach (var v in volumes)
        {
            if (!v.Owned) throw new RebuildRefusedException(409, $"volume {v.Name} on {deviceId} is owned by another controller: ask that one");
            if (!v.Mirrors.Any(m => m.DeviceId != deviceId && m.Current))
            {
                throw new RebuildRefusedException(409,
                    $"volume {v.Name} has no in-sync mirror but the one on {deviceId}: nothing could serve its reads or vouch for its bytes while {deviceId} is rebuilt");
            }
        }
        // A peer's rebuild still verifying has its mirrors back in sync, but its verify vouches for their bytes against
        // this device's: wiping this one meanwhile leaves that verify nothing to compare with or repair from. One
        // device of a volume is rebuilt at a time, until its rebuild is done.
        foreach (var peer in volumes.SelectMany(v => v.Mirrors).Select(m => m.DeviceId).Where(d => d != deviceId).Distinct(StringComparer.Ordinal))
        {
            if (await LatestAsync(peer, ct) is not { Phase: not (Done or "failed") } peerRebuild) continue;
            var shared = volumes.Where(v => v.MirrorOn(peer) is not null).Select(v => v.Name).Order(StringComparer.Ordinal).First();
            throw new RebuildRefusedException(409,
                $"volume {shared} has no in-sync mirror but the one on {deviceId} that is not being rebuilt itself: rebuild {peerRebuild.Id} of {peer} is {peerRebuild.Phase} (GET /devices/{peer}/rebuild); one device of a volume is rebuilt at a time");
        }
        var id = Guid.NewGuid().ToString("N")[..12];
        await using (var cmd = store.DataSource.CreateCommand(
            $"INSERT INTO {store.Schema}.rebuilds (rebuild_id, device_id, volumes, phase) VALUES (@id, @d, @v, @p)"))
        {
            cmd.Parameters.AddWithValue("id", id);
            cmd.Parameters.AddWithValue("d", deviceId);
            cmd.Parameters.AddWithValue("v", volumes.Select(v => v.Name).ToArray());
            cmd.Parameters.AddWithValue("p", Replaying);
            await cmd.ExecuteNonQueryAsync(ct);
        }
        logger.LogWarning("Rebuild {Id} of device {Device}: volumes {Volumes}", id, deviceId, string.Join(", ", volumes.Select(v => v.Name)));
        var row = (await LatestAsync(deviceId, ct))!;
        // At once rather than at the next tick, so the answer already shows the mirrors out of reads.
        await StepAsync(row, ct);
        return await ReportAsync(deviceId, ct) ?? throw new InvalidOperationException("the rebuild just recorded is gone");
    }

    /// <summary>The id of the device's rebuild still running, or null.</summary>
    public async Task<string?> RunningAsync(string deviceId, CancellationToken ct) =>
        await LatestAsync(deviceId, ct) is { Phase: not (Done or "failed") } row ? row.Id : null;

    /// <summary>The device's newest rebuild, as an operator sees it; null if it never had one.</summary>
    public async Task<DeviceRebuildReport?> ReportAsync(string deviceId, CancellationToken ct)
    {
        if (await LatestAsync(deviceId, ct) is not { } row) return null;
        var replay = await DeviceProgressAsync(deviceId, row.Id, ct);
        var mirrors = new List<RebuildMirror>();
        var sources = new List<string>();
        if (replay is not null)
        {
            var range = string.Join(", ", replay.ReplayUntil.OrderBy(kv => kv.Key, StringComparer.Ordinal)
                .Select(kv => $"partition {kv.Key} offsets {replay.LogStart.GetValueOrDefault(kv.Key)}..{kv.Value}"));
            sources.Add($"{deviceId}'s log, {range}: {replay.Transactions} writes and repairs replayed ({replay.Bytes} bytes), {replay.Refused} refused as when they first came");
        }
        foreach (var name in row.Volumes)
        {
            if (catalog.Find(name) is not { } v || v.MirrorOn(deviceId) is not { } m) continue;
            mirrors.Add(new RebuildMirror(name, m.State.ToString(), m.Reason, m.FullCopyDone, m.FullCopyTotal));
            if (replay is { LogTruncated: true })
            {
                sources.Add($"{name}: the log no longer held its start, so every block is copied from an in-sync mirror ({(m.State == MirrorState.InSync ? m.Reason : $"now {m.State}: {m.Reason}")})");
            }
        }
        var verifies = row.Verifies.Select(saved => verify.Latest(saved.Volume) is { } latest && latest.Id == saved.Id ? latest : saved).ToArray();
        return new DeviceRebuildReport(row.Id, deviceId, row.Phase, row.Volumes, row.RequestedAt, row.CompletedAt, row.Error, replay,
            [.. mirrors], verifies, [.. sources]);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                foreach (var row in await UnfinishedAsync(stoppingToken))
                {
                    await _starts.WaitAsync(stoppingToken);
                    try
                    {
                        await StepAsync(row, stoppingToken);
                    }
                    finally
                    {
                        _starts.Release();
                    }
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                logger.LogInformation("Rebuilds not advanced this time: {Reason}", ex.Message);
            }
        }
    }

    /// <summary>Moves one rebuild on as far as it can go now. Only the controller owning all its volumes drives it.</summary>
    private async Task StepAsync(RebuildRow row, CancellationToken ct)
    {
        var volumes = row.Volumes.Select(catalog.Find).OfType<Volume>().Where(v => v.MirrorOn(row.DeviceId) is not null).ToList();
        if (volumes.Any(v => !v.Owned)) return;
        switch (row.Phase)
        {
            case Replaying:
                await StepReplayingAsync(row, volumes, ct);
                break;
            case CatchingUp when volumes.All(v => v.MirrorOn(row.DeviceId)!.State == MirrorState.InSync):
                await StartVerifiesAsync(row, volumes, ct);
                break;
            case Verifying:
                await StepVerifyingAsync(row, volumes, ct);
                break;
        }
    }

    private async Task StepReplayingAsync(RebuildRow row, List<Volume> volumes, CancellationToken ct)
    {
        var replay = await DeviceProgressAsync(row.DeviceId, row.Id, ct);
        if (replay is null)
        {
            // Every mirror on the device is recorded out of reads before the device deletes anything.
            foreach (var v in volumes)
            {
                var m = v.MirrorOn(row.DeviceId)!;
                if (m.State != MirrorState.Rebuilding)
                {
                    await catalog.SetMirrorStateAsync(v, m, MirrorState.Rebuilding,
                        $"rebuild {row.Id}: {row.DeviceId}'s objects are deleted and rebuilt by replaying its log", ct);
                }
            }
            try
            {
                await devices.RequestRebuildAsync(row.DeviceId, row.Id, ct);
            }
            catch (Exception ex) when (ex is HttpRequestException or TimeoutException)
            {
                if (DateTime.UtcNow - _lastAskFailureLogged > TimeSpan.FromSeconds(10))
                {
                    _lastAskFailureLogged = DateTime.UtcNow;
                    logger.LogWarning("Rebuild {Id}: device {Device} did not take it yet ({Reason}); asking again", row.Id, row.DeviceId, ex.Message);
                }
            }
            return;
        }
        if (replay.CompletedAt is null) return;
        foreach (var v in volumes)
        {
            var m = v.MirrorOn(row.DeviceId)!;
            if (m.State != MirrorState.Rebuilding) continue; // a truncation notice or a fault moved it on already
            var full = replay.LogTruncated || m.FullCopyPending;
            await catalog.SetMirrorStateAsync(v, m, full ? MirrorState.NeedsFullCopy : MirrorState.Resyncing, full
                ? $"rebuild {row.Id} replayed {replay.Transactions} transactions; the log no longer holds its start, so a full copy follows"
                : $"rebuild {row.Id} replayed {replay.Transactions} transactions ({replay.Bytes} bytes); catching up with what was written meanwhile", ct);
        }
        await SetPhaseAsync(row, CatchingUp, ct);
        logger.LogWarning("Rebuild {Id} of {Device}: replay done ({Transactions} transactions, {Bytes} bytes); its mirrors catch up",
            row.Id, row.DeviceId, replay.Transactions, replay.Bytes);
    }

    private async Task StartVerifiesAsync(RebuildRow row, List<Volume> volumes, CancellationToken ct)
    {
        row.Verifies.Clear();
        await SetPhaseAsync(row, Verifying, ct);
        await StepVerifyingAsync(row, volumes, ct);
    }

    /// <summary>Starts each volume's verify (again, after a restart) and ends the rebuild once all are done.</summary>
    private async Task StepVerifyingAsync(RebuildRow row, List<Volume> volumes, CancellationToken ct)
    {
        var changed = false;
        foreach (var v in volumes)
        {
            var saved = row.Verifies.FindIndex(r => r.Volume == v.Name);
            var latest = verify.Latest(v.Name);
            if (saved >= 0 && latest is not null && latest.Id == row.Verifies[saved].Id)
            {
                if (latest != row.Verifies[saved])
                {
                    row.Verifies[saved] = latest;
                    changed = true;
                }
                continue;
            }
            if (saved >= 0 && row.Verifies[saved].State != "running") continue;
            // Not started, or started by a controller run that is gone: start it (null while another verify runs).
            if (verify.Start(v, repair: true, VerifyService.DefaultRangeBlocks, maxBytesPerSecond: 0) is not { } started) continue;
            if (saved >= 0) row.Verifies[saved] = started;
            else row.Verifies.Add(started);
            changed = true;
        }
        var done = volumes.All(v => row.Verifies.Any(r => r.Volume == v.Name && r.State != "running"));
        if (done)
        {
            await SetPhaseAsync(row, Done, ct, completed: true);
            logger.LogWarning("Rebuild {Id} of {Device} done: verified {Blocks} blocks, {Wrong} wrong runs found and {Repaired} repaired",
                row.Id, row.DeviceId, row.Verifies.Sum(r => r.BlocksChecked), row.Verifies.Sum(r => r.Mismatches.Count),
                row.Verifies.Sum(r => r.Mismatches.Count(x => x.Repaired)));
        }
        else if (changed)
        {
            await SetPhaseAsync(row, Verifying, ct);
        }
    }

    private async Task SetPhaseAsync(RebuildRow row, string phase, CancellationToken ct, bool completed = false)
    {
        await using var cmd = store.DataSource.CreateCommand($"""
            UPDATE {store.Schema}.rebuilds SET phase = @p, verifies = @v::jsonb, completed_at = CASE WHEN @c THEN now() ELSE completed_at END
            WHERE rebuild_id = @id
            """);
        cmd.Parameters.AddWithValue("id", row.Id);
        cmd.Parameters.AddWithValue("p", phase);
        cmd.Parameters.AddWithValue("v", JsonSerializer.Serialize(row.Verifies, ApiJson));
        cmd.Parameters.AddWithValue("c", completed);
        await cmd.ExecuteNonQueryAsync(ct);
        row.Phase = phase;
    }

    private static readonly JsonSerializerOptions ApiJson = new(JsonSerializerDefaults.Web);

    /// <summary>True when an agent with this id has started at least once (it registered in the agents' <c>devices</c> table).</summary>
    public async Task<bool> DeviceRegisteredAsync(string deviceId, CancellationToken ct)
    {
        await using var cmd = store.DataSource.CreateCommand($"SELECT EXISTS (SELECT 1 FROM {store.Schema}.devices WHERE id = @d)");
        cmd.Parameters.AddWithValue("d", deviceId);
        try
        {
            return (bool)(await cmd.ExecuteScalarAsync(ct))!;
        }
        catch (PostgresException ex) when (ForeignTables.IsMissing(ex))
        {
            return false;
        }
    }

    /// <summary>The device's own record of the rebuild (<c>device_rebuilds</c>, the device's table); null until it began.</summary>
    private async Task<DeviceRebuildProgress?> DeviceProgressAsync(string deviceId, string id, CancellationToken ct)
    {
        await using var cmd = store.DataSource.CreateCommand($"""
            SELECT r.log_start::text, r.replay_until::text, r.wiped, r.transactions, r.bytes, r.refused, r.started_at, r.completed_at,
                   (SELECT coalesce(jsonb_object_agg(o.partition::text, o.next_offset), jsonb_build_object())::text FROM {store.Schema}.device_offsets o WHERE o.device_id = r.device_id)
            FROM {store.Schema}.device_rebuilds r WHERE r.device_id = @d AND r.rebuild_id = @id
            """);
        cmd.Parameters.AddWithValue("d", deviceId);
        cmd.Parameters.AddWithValue("id", id);
        try
        {
            await using var r = await cmd.ExecuteReaderAsync(ct);
            if (!await r.ReadAsync(ct)) return null;
            var start = Offsets(r.GetString(0));
            var until = Offsets(r.GetString(1));
            var next = Offsets(r.GetString(8));
            var completed = r.IsDBNull(7) ? (DateTimeOffset?)null : r.GetFieldValue<DateTimeOffset>(7);
            var replayed = until.ToDictionary(kv => kv.Key, kv => Math.Min(kv.Value, Math.Max(next.GetValueOrDefault(kv.Key), start.GetValueOrDefault(kv.Key))));
            return new DeviceRebuildProgress(id, completed is not null ? Done : r.GetBoolean(2) ? Replaying : "wiping", start, until, replayed,
                start.Values.Any(o => o > 0), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5), r.GetFieldValue<DateTimeOffset>(6), completed);
        }
        catch (PostgresException ex) when (ForeignTables.IsMissing(ex))
        {
            return null; // no device agent has created its tables yet
        }
    }

    private static Dictionary<string, long> Offsets(string json) => JsonSerializer.Deserialize<Dictionary<string, long>>(json)!;

    private async Task<RebuildRow?> LatestAsync(string deviceId, CancellationToken ct) =>
        (await RowsAsync("WHERE device_id = @d ORDER BY requested_at DESC LIMIT 1", deviceId, ct)).FirstOrDefault();

    private Task<List<RebuildRow>> UnfinishedAsync(CancellationToken ct) =>
        RowsAsync("WHERE phase NOT IN ('done', 'failed') ORDER BY requested_at", null, ct);

    private async Task<List<RebuildRow>> RowsAsync(string where, string? deviceId, CancellationToken ct)
    {
        var rows = new List<RebuildRow>();
        await using var cmd = store.DataSource.CreateCommand(
            $"SELECT rebuild_id, device_id, volumes, phase, error, verifies::text, requested_at, completed_at FROM {store.Schema}.rebuilds {where}");
        if (deviceId is not null) cmd.Parameters.AddWithValue("d", deviceId);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            rows.Add(new RebuildRow(r.GetString(0), r.GetString(1), r.GetFieldValue<string[]>(2), r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4),
                JsonSerializer.Deserialize<List<VerifyReport>>(r.GetString(5), ApiJson) ?? [],
                r.GetFieldValue<DateTimeOffset>(6), r.IsDBNull(7) ? null : r.GetFieldValue<DateTimeOffset>(7)));
        }
        return rows;
    }

    private sealed class RebuildRow(
        string id, string deviceId, string[] volumes, string phase, string? error, List<VerifyReport> verifies, DateTimeOffset requestedAt, DateTimeOffset? completedAt)
    {
        public string Id { get; } = id;

        public string DeviceId { get; } = deviceId;

        public string[] Volumes { get; } = volumes;

        public string Phase { get; set; } = phase;

        public string? Error { get; } = error;

        public List<VerifyReport> Verifies { get; } = verifies;

        public DateTimeOffset RequestedAt { get; } = requestedAt;

        public DateTimeOffset? CompletedAt { get; } = completedAt;
    }
}

/// <summary>A rebuild that may not begin: the HTTP status to answer and a sentence.</summary>
internal sealed class RebuildRefusedException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}
