using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Tagging;

namespace TaggedMirror.Controller.Volumes;

/// <summary>
/// Keeps this controller's volume leases: renews them (a third of the lease apart, every half second after a
/// failure), takes over volumes whose lease expired, loads volumes created elsewhere, and checks that this
/// process still holds its controller id. A volume taken over is read again from its stream before its first
/// write. A volume whose lease could not be renewed stops taking writes at its deadline, before the lease can
/// expire (see <see cref="Volume.Writable"/>). If another process took the controller id, this one stops.
/// </summary>
internal sealed class LeaseKeeper(
    VolumeCatalog catalog, WritePipeline pipeline, ControllerIdentity identity, ControllerOptions options, IHostApplicationLifetime lifetime,
    ILogger<LeaseKeeper> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.LeaseDuration / 3;
        while (!stoppingToken.IsCancellationRequested)
        {
            var ok = await RoundAsync(stoppingToken);
            await Task.Delay(ok ? interval : TimeSpan.FromMilliseconds(500), stoppingToken);
        }
    }

    private async Task<bool> RoundAsync(CancellationToken ct)
    {
        try
        {
            if (!await identity.StillHeldAsync(ct))
            {
                foreach (var v in catalog.All) v.Owned = false;
                logger.LogCritical("Controller id {Id} was taken by another process while this one was cut off from PostgreSQL; stopping", identity.ControllerId);
                lifetime.StopApplication();
                return false;
            }
            await catalog.RefreshAsync(ct);
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException or IOException)
        {
            logger.LogWarning("Lease round failed: {Reason}", ex.Message);
            return false;
        }
        var allRenewed = true;
        foreach (var v in catalog.All)
        {
            try
            {
                var owned = await catalog.TryLeaseAsync(v, ct);
                if (owned && !v.Owned)
                {
                    // Taken (over): read the volume as its stream has it now, before its first write here. What
                    // the stale copy still had in flight is not waited for any more (it was never acknowledged).
                    pipeline.Abandon(v);
                    var fresh = await catalog.ReloadAsync(v, ct) ?? v;
                    fresh.Owned = true;
                    logger.LogWarning("Volume {Volume}: lease taken (owner epoch {OwnerEpoch})", v.Name, fresh.OwnerEpoch);
                }
                else if (!owned && v.Owned)
                {
                    v.Owned = false;
                    pipeline.Abandon(v);
                    logger.LogWarning("Volume {Volume}: lease lost to another controller", v.Name);
                }
                else if (!owned && pipeline.Abandon(v) is > 0 and var abandoned)
                {
                    // The catalog learnt it first, from a record the lease check refused (VolumeCatalog.TakenOver), and
                    // only marked the volume not owned: its writes still waiting for a mirror are let go here all the
                    // same, or one whose copy a device refuses as fenced (or lost to a truncation) stays in flight, its
                    // bytes in that device's backlog, for as long as this process lives.
                    logger.LogWarning("Volume {Volume}: lease lost to another controller; {Writes} writes in flight here were let go", v.Name, abandoned);
                }
            }
            catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException or IOException)
            {
                allRenewed = false;
                logger.LogWarning("Volume {Volume}: lease renewal failed: {Reason}", v.Name, ex.Message);
            }
        }
        return allRenewed;
    }
}
