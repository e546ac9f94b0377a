using JasperFx;
using JasperFx.Events.Daemon;
using Marten;
using Npgsql;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>
/// Runs the reconciliation projection in Marten's async daemon on one controller at a time, and keeps it following
/// the log. Marten's own hot/cold coordinator was tried first and wedged after PostgreSQL restarts: a controller
/// whose lock had died with its connection still thought it held it and kept an agent whose high-water poller had
/// stopped, while the other controller took the lock and failed on every batch ("progression out of order"); the
/// projection then never moved again and no repair was asked (design.md, "Who runs reconciliation").
/// <para>
/// Here leadership is a session-level advisory lock on a connection of this service's own, and it is proven every
/// second by using that connection: when the query fails, the session and with it the lock are gone, so the daemon
/// is stopped at once and the lock sought again. A second runner for a moment (between the server dropping the
/// session and this side noticing) is safe: each batch takes the projection's lock and Marten's progress update
/// checks the previous position, so a batch of a runner that fell behind rolls back whole. While leading, a
/// watchdog restarts the daemon when the projection stays behind the newest event with no progress, or its agent
/// stays paused.
/// </para>
/// </summary>
internal sealed class ReconciliationRunner(
    IDocumentStore store, NpgsqlDataSource dataSource, string schema, ControllerOptions options, ILoggerFactory loggers)
    : BackgroundService
{
    private readonly ILogger _logger = loggers.CreateLogger<ReconciliationRunner>();

    // The daemon's own log (a line per batch at Information) under Marten's name, filtered in appsettings.json.
    private readonly ILogger _daemonLogger = loggers.CreateLogger("Marten.Events.Daemon");

    private static readonly TimeSpan Beat = TimeSpan.FromSeconds(1);
    private readonly string _shard = ReconciliationProjection.Name + ":All";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var session = await dataSource.OpenConnectionAsync(stoppingToken);
                if (await TryLeadAsync(session, stoppingToken))
                {
                    _logger.LogInformation("Reconciliation: controller {Id} runs the projection", options.Id);
                    await LeadAsync(session, stoppingToken);
                }
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                _logger.LogWarning("Reconciliation runner: {Reason}; seeking the lead again", ex.Message);
            }
            try
            {
                await Task.Delay(Beat, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task<bool> TryLeadAsync(NpgsqlConnection session, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT pg_try_advisory_lock(hashtextextended(@k, 0))", session);
        cmd.Parameters.AddWithValue("k", $"TaggedMirror.ReconciliationRunner:{schema}");
        return (bool)(await cmd.ExecuteScalarAsync(ct))!;
    }

    /// <summary>Runs the daemon until the lock's session fails or the service stops; the daemon is stopped either way.</summary>
    private async Task LeadAsync(NpgsqlConnection session, CancellationToken ct)
    {
        var daemon = await StartDaemonAsync(ct);
        try
        {
            long lastPosition = -1;
            var movedAt = DateTime.UtcNow;
            DateTime? pausedSince = null;
            while (true)
            {
                await Task.Delay(Beat, ct);
                var (position, newest) = await PositionAsync(session, ct);
                var now = DateTime.UtcNow;
                if (position >= newest || position != lastPosition) (lastPosition, movedAt) = (position, now);
                pausedSince = daemon.CurrentAgents().Any(a => a.Status == AgentStatus.Paused) ? pausedSince ?? now : null;
                // A paused agent (an error in a batch) is restarted after two beats; one that is merely stuck, after
                // the stall timeout (longer than the daemon's wait for a sequence reserved by a transaction in flight).
                var stalled = now - movedAt >= options.ReconciliationStallTimeout;
                var paused = now - pausedSince >= 2 * Beat;
                if (!stalled && !paused) continue;
                _logger.LogWarning(
                    "Reconciliation is at event {Position} of {Newest}{Paused}, no progress for {Seconds:F0} s: restarting the daemon",
                    position, newest, paused ? " with its agent paused" : "", (now - movedAt).TotalSeconds);
                await StopAsync(daemon);
                daemon = await StartDaemonAsync(ct);
                (movedAt, pausedSince) = (DateTime.UtcNow, null);
            }
        }
        finally
        {
            await StopAsync(daemon);
            _logger.LogInformation("Reconciliation: controller {Id} no longer runs the projection", options.Id);
        }
    }

    private async Task<IProjectionDaemon> StartDaemonAsync(CancellationToken ct)
    {
        var daemon = await store.BuildProjectionDaemonAsync(logger: _daemonLogger);
        try
        {
            await daemon.StartAgentAsync(_shard, ct);
            return daemon;
        }
        catch
        {
            daemon.Dispose();
            throw;
        }
    }

    private async Task StopAsync(IProjectionDaemon daemon)
    {
        try
        {
            // Stopping waits for the batch in hand; with the database gone that may never end, so do not wait long.
            await daemon.StopAllAsync().WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _logger.LogDebug("Reconciliation daemon stop: {Reason}", ex.Message);
        }
        daemon.Dispose();
    }

    /// <summary>
    /// The projection's position and the newest event, read through the lock's own session: a failure here means the
    /// lock may be gone, which ends the lead.
    /// </summary>
    private async Task<(long Position, long Newest)> PositionAsync(NpgsqlConnection session, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"""
            SELECT coalesce((SELECT last_seq_id FROM {schema}.mt_event_progression WHERE name = @shard), 0),
                   coalesce((SELECT max(seq_id) FROM {schema}.mt_events), 0)
            """, session)
        {
            CommandTimeout = 5,
        };
        cmd.Parameters.AddWithValue("shard", _shard);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        await r.ReadAsync(ct);
        return (r.GetInt64(0), r.GetInt64(1));
    }
}
