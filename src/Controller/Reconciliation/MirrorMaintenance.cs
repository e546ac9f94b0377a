using System.Diagnostics;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.FullCopy;
using TaggedMirror.Controller.Tagging;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>
/// Brings mirrors back: runs a full copy for a mirror that needs one, and declares a resyncing mirror in sync
/// once every mirror of the volume has passed a barrier of this epoch covering the last write it missed, and
/// reconciliation shows no covered write it still lacks (all were repaired). Finishes a replace: once the new
/// mirror is in sync, the one it replaces is detached (from the stream's record, so a restart finishes it too).
/// Every <see cref="ControllerOptions.OrphanSweepInterval"/>, removes objects devices hold for no mirror.
/// </summary>
internal sealed class MirrorMaintenance(
    VolumeCatalog catalog, FullCopyService fullCopies, WritePipeline pipeline, VolumeChanges changes, EventStreams store, TagGenerator tags,
    ReconciliationCommits commits, ControllerOptions options, ILogger<MirrorMaintenance> logger) : BackgroundService
{
    private readonly Dictionary<(string Volume, string Device), Task> _fullCopies = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var lastSweep = Stopwatch.GetTimestamp();
        while (!stoppingToken.IsCancellationRequested)
        {
            // Woken when reconciliation commits (a resyncing mirror's copies may all be recorded now), at the latest every 250 ms.
            await commits.Maintenance.WaitAsync(TimeSpan.FromMilliseconds(250), stoppingToken);
            if (Stopwatch.GetElapsedTime(lastSweep) >= options.OrphanSweepInterval)
            {
                lastSweep = Stopwatch.GetTimestamp();
                try
                {
                    await changes.RemoveOrphansAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    logger.LogWarning("Looking for objects of no mirror: {Reason}", ex.Message);
                }
            }
            foreach (var v in catalog.All.Where(v => v.Owned))
            {
                foreach (var m in v.Mirrors)
                {
                    try
                    {
                        // A degradation that could not be recorded when a write missed the mirror (PostgreSQL away) is recorded now.
                        if (m.PendingDegrade is { } pending)
                        {
                            await pipeline.DegradeAsync(v, m, pending);
                        }
                        else if (m.State == MirrorState.NeedsFullCopy)
                        {
                            StartFullCopy(v, m, stoppingToken);
                        }
                        else if (m.State == MirrorState.Resyncing)
                        {
                            // Read before the check: a write it misses during the check keeps it from being current.
                            var missed = m.LastSkippedSeq;
                            if (await CaughtUpAsync(v, m, missed, stoppingToken))
                                await catalog.SetMirrorStateAsync(v, m, MirrorState.InSync, "every write it missed has been copied", stoppingToken, verifiedMissedSeq: missed);
                        }
                        else if (m.Replaces is { } replaced && m.Current && v.MirrorOn(replaced) is not null)
                        {
                            await changes.DetachAsync(v.Name, replaced, $"replaced by {m.DeviceId}, which is in sync", stoppingToken);
                            break; // the volume was replaced by its new shape: the next round looks at that
                        }
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        logger.LogWarning("Volume {Volume}, mirror {Device}: {Reason}", v.Name, m.DeviceId, ex.Message);
                    }
                }
            }
        }
    }

    private void StartFullCopy(Volume v, Mirror m, CancellationToken ct)
    {
        var key = (v.Name, m.DeviceId);
        if (_fullCopies.TryGetValue(key, out var running) && !running.IsCompleted) return;
        _fullCopies[key] = Task.Run(async () =>
        {
            try
            {
                await fullCopies.FullCopyAsync(v, m, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning("Volume {Volume}: full copy to {Device} stopped ({Reason}); it starts again", v.Name, m.DeviceId, ex.Message);
            }
        }, ct);
    }

    private async Task<bool> CaughtUpAsync(Volume v, Mirror m, long missedSeq, CancellationToken ct)
    {
        var s = store.Schema;
        await using var cmd = store.DataSource.CreateCommand($"""
            SELECT (SELECT count(*) FROM unnest(@devices) AS m(device) WHERE {s}.barriers_cover(m.device, @c, @e, @missed)),
                   (SELECT count(*) FROM (
                        SELECT DISTINCT t.controller_id, t.epoch, t.seq FROM {s}.recon_entries t
                        WHERE t.volume = @v
                          AND NOT EXISTS (SELECT 1 FROM {s}.recon_entries x
                                          WHERE (x.controller_id, x.epoch, x.seq, x.device_id) = (t.controller_id, t.epoch, t.seq, @d))
                          AND NOT EXISTS (SELECT 1 FROM {s}.recon_repaired r
                                          WHERE (r.controller_id, r.epoch, r.seq, r.device_id) = (t.controller_id, t.epoch, t.seq, @d))
                          AND {s}.barriers_cover(@d, t.controller_id, t.epoch, t.seq)) missing)
            """);
        cmd.Parameters.AddWithValue("c", tags.ControllerId);
        cmd.Parameters.AddWithValue("e", tags.Epoch);
        cmd.Parameters.AddWithValue("devices", v.Mirrors.Select(x => x.DeviceId).ToArray());
        cmd.Parameters.AddWithValue("v", v.Name);
        cmd.Parameters.AddWithValue("d", m.DeviceId);
        cmd.Parameters.AddWithValue("missed", missedSeq);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        await r.ReadAsync(ct);
        var devicesPassed = r.GetInt64(0);
        var missing = r.GetInt64(1);
        return devicesPassed == v.Mirrors.Length && missing == 0;
    }
}
