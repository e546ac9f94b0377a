namespace TaggedMirror.Controller.Intake;

/// <summary>
/// Forgets answered intake request ids once they were answered longer ago than
/// <see cref="ControllerOptions.IntakeRequestRetention"/> (seven days): one row a request, which would otherwise be
/// kept forever. Within that time a request carrying the id again (a producer's retry) is answered with its first
/// outcome and nothing is written; after it, the id is new again, as an idempotency key expires. Pending ids are never
/// forgotten: their writes' fate is still to be settled. Runs every <see cref="ControllerOptions.EventPruneInterval"/>
/// on any controller, in chunks of <see cref="ChunkRows"/> rows, at most <see cref="ChunksPerPass"/> a pass.
/// </summary>
internal sealed class IntakeRetention(IntakeStore store, ControllerOptions options, IntakeTelemetry telemetry, ILogger<IntakeRetention> logger,
    int chunkRows = IntakeRetention.ChunkRows, int chunksPerPass = IntakeRetention.ChunksPerPass) : BackgroundService
{
    /// <summary>Rows one statement deletes: one short transaction each.</summary>
    internal const int ChunkRows = 10_000;

    /// <summary>Chunks a pass takes at most (a million ids); more are forgotten over several passes.</summary>
    internal const int ChunksPerPass = 100;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.EventPruneInterval <= TimeSpan.Zero)
        {
            logger.LogInformation("Intake retention: off (Controller:EventPruneInterval is 0); answered request ids are kept forever");
            return;
        }
        using var timer = new PeriodicTimer(options.EventPruneInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                var (rows, more) = await PruneAsync(stoppingToken);
                if (rows > 0)
                {
                    logger.LogInformation("Intake retention: {Rows} request ids answered more than {Retention} ago forgotten{More}",
                        rows, options.IntakeRequestRetention, more ? " (more next time: a pass takes at most a million)" : "");
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning("Intake retention: {Reason}; tried again in {Interval}", ex.Message, options.EventPruneInterval);
            }
        }
    }

    /// <summary>One pass: chunk after chunk until one is not full or <see cref="ChunksPerPass"/> were taken (<c>More</c>).</summary>
    internal async Task<(long Rows, bool More)> PruneAsync(CancellationToken ct)
    {
        long rows = 0;
        for (var chunk = 0; chunk < chunksPerPass; chunk++)
        {
            var n = await store.PruneAnsweredAsync(options.IntakeRequestRetention, chunkRows, ct);
            rows += n;
            telemetry.Expired.Add(n);
            if (n < chunkRows) return (rows, false);
        }
        return (rows, true);
    }
}
