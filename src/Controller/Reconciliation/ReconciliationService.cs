using System.Diagnostics;
using System.Text.Json;
using MassTransit;
using TaggedMirror.Contracts.Bus;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>
/// Publishes what the reconciliation projection (run by Marten's async daemon) decided, its outbox, on the bus, and
/// runs its time-based decisions on a timer. Several controllers may run this: one publisher at a time (a
/// session-level advisory lock) publishes decisions and then deletes them, holding no transaction open while the
/// bus takes them (see <see cref="PublishBatchAsync"/>); the timer's decisions take the projection's own lock.
/// </summary>
internal sealed class ReconciliationService(
    EventStreams store, ReconciliationProjection projection, ReconciliationCommits commits, IBus bus, ControllerTelemetry telemetry,
    ILogger<ReconciliationService> logger)
    : BackgroundService
{
    private static readonly JsonSerializerOptions Json = JsonSerializerOptions.Web;

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        return Task.WhenAll(PublishOutboxAsync(stoppingToken), DecideOnTimerAsync(stoppingToken));
    }

    /// <summary>
    /// Runs reconciliation's decisions once a second even when no event arrives: devices record a barrier pass
    /// only when it covers something new, so on an idle cluster the time-based decisions (retire after the grace
    /// period, ask again) would otherwise wait for the next write. And the decisions a committed batch of the daemon
    /// left owed, as soon as the pacing lets them run (<see cref="ControllerOptions.DecideInterval"/>).
    /// </summary>
    private async Task DecideOnTimerAsync(CancellationToken ct)
    {
        var tick = Stopwatch.StartNew();
        while (!ct.IsCancellationRequested)
        {
            // Looked at again after every wait: a batch of the daemon may have run the decisions meanwhile.
            var owedIn = projection.Pacing.OwedIn();
            var untilTick = TimeSpan.FromSeconds(1) - tick.Elapsed;
            var due = owedIn is { } owed && owed < untilTick ? owed : untilTick;
            if (due > TimeSpan.Zero)
            {
                if (owedIn is null) await commits.Decisions.WaitAsync(due, ct);
                else await Task.Delay(due, ct);
                continue;
            }
            tick.Restart();
            projection.Pacing.Ran();
            try
            {
                await using var conn = await store.DataSource.OpenConnectionAsync(ct);
                await using var tx = await conn.BeginTransactionAsync(ct);
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
        while (!ct.IsCancellationRequested)
        {
            // Woken when the daemon commits a batch (its decisions are in the outbox then), at the latest every 100 ms.
            await commits.Outbox.WaitAsync(TimeSpan.FromMilliseconds(100), ct);
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

    /// <summary>
    /// Publishes up to 200 decisions, then deletes them. No transaction is held while the bus takes them: a
    /// transaction with row locks has an xid, and one left open while a publish waits for the bus (it can wait
    /// for as long as the bus is away) holds back the cluster's xmin, and with it every projection daemon — the
    /// reconciliation of the whole cluster stopped for the length of a bus outage. One publisher at a time across
    /// controllers, by a session-level advisory lock (which takes no xid); a crash between publish and delete
    /// publishes those decisions again, which consumers take as the same request. Each round is bounded too.
    /// </summary>
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromSeconds(10);

    private async Task<int> PublishBatchAsync(CancellationToken stoppingToken)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        bounded.CancelAfter(PublishTimeout);
        var ct = bounded.Token;
        await using var conn = await store.DataSource.OpenConnectionAsync(ct);
        var lockKey = $"TaggedMirror.ReconciliationOutbox:{store.Schema}";
        await using (var take = new Npgsql.NpgsqlCommand("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", conn))
        {
            take.Parameters.AddWithValue(lockKey);
            if (await take.ExecuteScalarAsync(ct) is not true) return 0;
        }
        try
        {
            return await PublishUnderLockAsync(conn, ct);
        }
        finally
        {
            // Released on this connection before it goes back to the pool (a broken connection releases it anyway).
            try
            {
                await using var release = new Npgsql.NpgsqlCommand("SELECT pg_advisory_unlock(hashtextextended($1, 0))", conn);
                release.Parameters.AddWithValue(lockKey);
                await release.ExecuteNonQueryAsync(CancellationToken.None);
            }
            catch (Exception ex) when (ex is Npgsql.NpgsqlException or InvalidOperationException)
            {
                logger.LogDebug("Reconciliation outbox: releasing the publisher lock: {Reason}", ex.Message);
            }
        }
    }

    private async Task<int> PublishUnderLockAsync(Npgsql.NpgsqlConnection conn, CancellationToken ct)
    {
        var rows = new List<(long Id, string Kind, string Payload)>();
        await using (var cmd = new Npgsql.NpgsqlCommand(
            $"SELECT id, kind, payload::text FROM {store.Schema}.recon_outbox WHERE published_at IS NULL ORDER BY id LIMIT 200", conn))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            while (await r.ReadAsync(ct)) rows.Add((r.GetInt64(0), r.GetString(1), r.GetString(2)));
        }
        if (rows.Count == 0) return 0;
        // Published together, not one after another: each publish waits for the broker's confirm (a few ms), and
        // 200 repairs asked one by one reached the resync a few at a time, in small batches copied in turn (most of
        // the time a 200-write outage took to converge). Order does not matter: a resync batch is coalesced, and
        // retiring entries is idempotent.
        var publishes = new List<Task>(rows.Count);
        var spans = new List<Activity>();
        var asked = new Dictionary<(string Volume, string Target), int>();
        try
        {
            foreach (var (_, kind, payload) in rows)
            {
                switch (kind)
                {
                    case "resync":
                        var resync = JsonSerializer.Deserialize<ResyncRequested>(payload, Json)!;
                        logger.LogDebug("Reconciliation: {Tag} of {Volume} never reached {Target}: resync blocks [{First}, {End}) from {Source}",
                            resync.Tag, resync.Volume, resync.TargetDevice, resync.FirstBlock, resync.FirstBlock + resync.BlockCount, resync.SourceDevice);
                        asked[(resync.Volume, resync.TargetDevice)] = asked.GetValueOrDefault((resync.Volume, resync.TargetDevice)) + 1;
                        // The decision's span is linked to the write it repairs; the bus carries it to the resync.
                        var outer = Activity.Current;
                        var span = StartDecisionSpan(resync);
                        if (span is not null) spans.Add(span);
                        publishes.Add(bus.Publish(resync, ct));
                        Activity.Current = outer;   // the next decision's span is not this one's child
                        break;
                    case "retire":
                        publishes.Add(bus.Publish(JsonSerializer.Deserialize<RetireEntries>(payload, Json)!, ct));
                        break;
                }
            }
            await Task.WhenAll(publishes);
        }
        finally
        {
            foreach (var span in spans) span.Dispose();
        }
        foreach (var ((volume, target), count) in asked)
            logger.LogInformation("Reconciliation: {Count} writes of {Volume} never reached {Target}: resync asked", count, volume, target);
        // Deleted, not marked: a published decision is on the bus (and a resync's outcome in the resyncs table), and
        // marked rows were never read again, so the table grew by every decision ever made.
        await using (var cmd = new Npgsql.NpgsqlCommand($"DELETE FROM {store.Schema}.recon_outbox WHERE id = ANY(@ids)", conn))
        {
            cmd.Parameters.AddWithValue("ids", rows.Select(r => r.Id).ToArray());
            await cmd.ExecuteNonQueryAsync(ct);
        }
        return rows.Count;
    }
}
