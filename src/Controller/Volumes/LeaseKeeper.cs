namespace TaggedMirror.Controller.Volumes;

/// <summary>Renews this controller's volume leases; a volume whose lease is lost stops taking writes here.</summary>
internal sealed class LeaseKeeper(VolumeCatalog catalog, ControllerOptions options, ILogger<LeaseKeeper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.LeaseDuration / 3);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            foreach (var v in catalog.All)
            {
                try
                {
                    var owned = await catalog.TryLeaseAsync(v.Name, stoppingToken);
                    if (owned != v.Owned)
                        logger.LogWarning("Volume {Volume}: lease {State}", v.Name, owned ? "taken" : "lost");
                    v.Owned = owned;
                }
                catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException)
                {
                    logger.LogWarning("Volume {Volume}: lease renewal failed: {Reason}", v.Name, ex.Message);
                }
            }
        }
    }
}
