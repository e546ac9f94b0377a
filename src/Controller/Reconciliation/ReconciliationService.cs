using System.Diagnostics;
using System.Text.Json;
using MassTransit;
using TaggedMirror.Contracts.Bus;
using TaggedMirror.EventStore;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>
/// Runs the reconciliation projection under the event store's daemon, and publishes what it decided (its
/// outbox) on the bus. Several controllers may run both: the daemon serialises rounds, and outbox rows are
/// claimed with SKIP LOCKED, so each decision is published once (consumers are idempotent anyway), and deleted in
/// the transaction that claimed it.
/// </summary>
internal sealed class ReconciliationService(
    PgEventStore store, ReconciliationProjection projection, IBus bus, ControllerTelemetry telemetry,
    ILogger<ReconciliationService> logger, ILogger<ProjectionDaemon> daemonLogger)
    : BackgroundService
{
    private static readonly JsonSerializerOptions Json = JsonSerializerOptions.Web;

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var daemon = new ProjectionDaemon(store, projection, new ProjectionDaemonOptions(), daemonLogger);
        return Task.WhenAll(daemon.RunAsync(stoppingToken), PublishOutboxAsync(stoppingToken), DecideOnTimerAsync(stoppingToken));
    }

    /// <summary>
    /// Runs reconciliation's decisions once a second even when no event arrives: devices record a barrier pass
    /// only when it covers something new, so on an idle cluster the time-based decisions (retire after the grace
    /// period, ask again) would otherwise wait for the next write.
    /// </summary>
    private async Task DecideOnTimerAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while (await timer.WaitForNextTickAsync(ct))
        {
            try
            {
                await using var conn = await store.DataSource.OpenConnectionAsync(ct);
                await using var tx = await conn.BeginTransactionAsync(ct);
                await using (var cmd = new Npgsql.NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", conn, tx))
                {
                    cmd.Parameters.AddWithValue(ProjectionDaemon.LockKey(store, projection));
                    await cmd.ExecuteNonQueryAsync(ct);
                }
                await projection.DecideAsync(conn, tx, ct);
                await tx.CommitAsync(ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                logger.LogDebug("Reconciliation decisions on the timer: {Reason}", ex.Message);
            }
        }
    }

    private async Task PublishOutboxAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        while (await timer.WaitForNextTickAsync(ct))
        {
            try
            {
                while (await PublishBatchAsync(ct) > 0)
                {
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                logger.LogWarning("Reconciliation outbox: {Reason}; trying again", ex.Message);
                await Task.Delay(TimeSpan.FromSeconds(1), ct);
            }
        }
    }

    private Activity? StartDecisionSpan(ResyncRequested r)
    {
        var links = KafkaTracing.TryParse(r.TraceParent, out var write) ? new[] { new ActivityLink(write) } : null;
        // A new root: reconciliation is not part of the write's trace, it points at it.
        var span = telemetry.Source.StartActivity("reconcile resync-requested", ActivityKind.Producer, parentContext: default, links: links);
        if (span is { IsAllDataRequested: true })
        {
            span.SetTag(TelemetryAttributes.Volume, r.Volume);
            span.SetTag(TelemetryAttributes.Tag, r.Tag);
            span.SetTag(TelemetryAttributes.ResyncSource, r.SourceDevice);
            span.SetTag(TelemetryAttributes.ResyncTarget, r.TargetDevice);
            span.SetTag(TelemetryAttributes.FirstBlock, r.FirstBlock);
            span.SetTag(TelemetryAttributes.Blocks, r.BlockCount);
        }
        return span;
    }

    private async Task<int> PublishBatchAsync(CancellationToken ct)
    {
        await using var conn = await store.DataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        var rows = new List<(long Id, string Kind, string Payload)>();
        await using (var cmd = new Npgsql.NpgsqlCommand(
            $"SELECT id, kind, payload::text FROM {store.Schema}.recon_outbox WHERE published_at IS NULL ORDER BY id LIMIT 200 FOR UPDATE SKIP LOCKED", conn, tx))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            while (await r.ReadAsync(ct)) rows.Add((r.GetInt64(0), r.GetString(1), r.GetString(2)));
        }
        if (rows.Count == 0) return 0;
        foreach (var (_, kind, payload) in rows)
        {
            switch (kind)
            {
                case "resync":
                    var resync = JsonSerializer.Deserialize<ResyncRequested>(payload, Json)!;
                    logger.LogInformation("Reconciliation: {Tag} of {Volume} never reached {Target}: resync blocks [{First}, {End}) from {Source}",
                        resync.Tag, resync.Volume, resync.TargetDevice, resync.FirstBlock, resync.FirstBlock + resync.BlockCount, resync.SourceDevice);
                    // The decision's span is linked to the write it repairs; the bus carries it to the resync.
                    using (var span = StartDecisionSpan(resync))
                        await bus.Publish(resync, ct);
                    break;
                case "retire":
                    await bus.Publish(JsonSerializer.Deserialize<RetireEntries>(payload, Json)!, ct);
                    break;
            }
        }
        // Deleted, not marked: a published decision is on the bus (and a resync's outcome in the resyncs table), and
        // marked rows were never read again, so the table grew by every decision ever made.
        await using (var cmd = new Npgsql.NpgsqlCommand($"DELETE FROM {store.Schema}.recon_outbox WHERE id = ANY(@ids)", conn, tx))
        {
            cmd.Parameters.AddWithValue("ids", rows.Select(r => r.Id).ToArray());
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
        return rows.Count;
    }
}
