using System.Diagnostics.Metrics;
using Npgsql;
using TaggedMirror.Contracts.TagTable;
using TaggedMirror.Controller.Reconciliation;

namespace TaggedMirror.Controller.Retention;

/// <summary>
/// Prunes the tag tables' traffic from the event store: <c>tag_recorded</c>, <c>tag_retired</c>, <c>barrier_passed</c>
/// and <c>fence_passed</c> of the devices' streams, once reconciliation has read them and they are older than
/// <see cref="ControllerOptions.EventRetention"/> (docs/design.md, "How long the event store keeps what"). Four events
/// a mirrored write, about 1.6 KiB of <c>mt_events</c>, would otherwise be kept forever. Everything else stays: the
/// volumes' streams (a volume is read back from its whole stream), the resync log, truncations, object deletions,
/// quarantined transactions, every stream's row and version (a device's next token is its stream's version), and the
/// recorded copies of an intake request still pending (its recovery looks for them).
/// <para>
/// Runs every <see cref="ControllerOptions.EventPruneInterval"/> on any controller; a chunk of at most
/// <see cref="ChunkEvents"/> sequence numbers is one transaction under an advisory lock, so controllers take turns
/// and a chunk is pruned whole or not at all. How far it got is the one row of <c>event_retention</c>.
/// </para>
/// </summary>
internal sealed class EventRetention(
    NpgsqlDataSource dataSource, string schema, ControllerOptions options, Counter<long> prunedCounter, ILogger<EventRetention> logger,
    int chunkEvents = EventRetention.ChunkEvents, int chunksPerPass = EventRetention.ChunksPerPass)
    : BackgroundService
{
    /// <summary>The kinds pruned: the tag tables' traffic, which only the projections read (inline at their append, reconciliation after).</summary>
    internal static readonly string[] PrunedTypes = [TagTableEventTypes.Recorded, TagTableEventTypes.Retired, TagTableEventTypes.Barrier, TagTableEventTypes.Fence];

    /// <summary>Sequence numbers a chunk covers: one short transaction each.</summary>
    internal const int ChunkEvents = 10_000;

    /// <summary>Chunks a pass takes at most (a million events); a longer history is pruned over several passes.</summary>
    internal const int ChunksPerPass = 100;

    /// <summary>The table of how far pruning got, in the controller's schema (created with the others).</summary>
    public static string Ddl(string schema) => $"""
        -- How far the event store's tag-table traffic was pruned (EventRetention): every such event at or below
        -- pruned_through that was old enough is gone. One row.
        CREATE TABLE IF NOT EXISTS {schema}.event_retention (
            id int PRIMARY KEY CHECK (id = 1),
            pruned_through bigint NOT NULL DEFAULT 0,
            events_pruned bigint NOT NULL DEFAULT 0,
            pruned_at timestamptz);
        INSERT INTO {schema}.event_retention (id) VALUES (1) ON CONFLICT (id) DO NOTHING;
        """;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.EventPruneInterval <= TimeSpan.Zero)
        {
            logger.LogInformation("Event retention: off (Controller:EventPruneInterval is 0); the tag tables' events are kept forever");
            return;
        }
        logger.LogInformation("Event retention: the tag tables' events are pruned once reconciliation read them and they are older than {Retention}, every {Interval}",
            options.EventRetention, options.EventPruneInterval);
        using var timer = new PeriodicTimer(options.EventPruneInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                var (events, through, more) = await PruneAsync(stoppingToken);
                if (events > 0)
                {
                    logger.LogInformation("Event retention: {Events} events pruned, the store's tag-table traffic now starts after sequence {Through}{More}",
                        events, through, more ? " (more next time: a pass takes at most a million)" : "");
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning("Event retention: {Reason}; tried again in {Interval}", ex.Message, options.EventPruneInterval);
            }
        }
    }

    /// <summary>
    /// One pass: chunk after chunk until the bound (reconciliation's position, or an event too young) or
    /// <see cref="ChunksPerPass"/> chunks. <c>More</c>: the pass stopped at its count of chunks, not at the bound.
    /// </summary>
    internal async Task<(long Events, long Through, bool More)> PruneAsync(CancellationToken ct)
    {
        long events = 0, through = 0;
        for (var chunk = 0; chunk < chunksPerPass; chunk++)
        {
            var (pruned, to, full) = await PruneChunkAsync(ct);
            events += pruned;
            through = to;
            if (!full) return (events, through, false);
        }
        return (events, through, true);
    }

    /// <summary>
    /// One chunk in one transaction: from the row's position, at most <see cref="ChunkEvents"/> sequence numbers,
    /// never past what reconciliation has read (its progress, and Marten's high-water mark below which no event can
    /// still commit), and stopping before the first event younger than the retention. <c>Full</c>: the chunk went its
    /// whole length, so the next may find more. Another controller's chunk under way: nothing, not full.
    /// </summary>
    private async Task<(long Pruned, long To, bool Full)> PruneChunkAsync(CancellationToken ct)
    {
        await using var conn = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using (var lockCmd = new NpgsqlCommand("SELECT pg_try_advisory_xact_lock(hashtextextended(@k, 0))", conn, tx))
        {
            lockCmd.Parameters.AddWithValue("k", $"TaggedMirror.EventRetention:{schema}");
            if (!(bool)(await lockCmd.ExecuteScalarAsync(ct))!) return (0, 0, false);
        }
        // A progress row missing reads as 0: nothing is pruned before reconciliation has read it (least() would skip a null).
        await using var cmd = new NpgsqlCommand($"""
            WITH bounds AS (
                SELECT r.pruned_through AS lo,
                       least(r.pruned_through + @chunk,
                             coalesce((SELECT last_seq_id FROM {schema}.mt_event_progression WHERE name = @shard), 0),
                             coalesce((SELECT last_seq_id FROM {schema}.mt_event_progression WHERE name = 'HighWaterMark'), 0)) AS hi
                FROM {schema}.event_retention r WHERE r.id = 1 FOR UPDATE),
            young AS (
                SELECT min(e.seq_id) AS first FROM {schema}.mt_events e, bounds b
                WHERE e.seq_id > b.lo AND e.seq_id <= b.hi AND e."timestamp" >= now() - @keep),
            upto AS (SELECT b.lo, greatest(b.lo, coalesce(y.first - 1, b.hi)) AS hi FROM bounds b, young y),
            -- Read in the delete's own snapshot: a request is recorded pending before its write is sent, so every copy
            -- this statement can see of a pending request has its pending row visible too (writes without a request
            -- carry none, and must not compare as unknown).
            pending AS MATERIALIZED (
                SELECT p.producer_id || '/' || p.request_id AS k FROM {schema}.intake_requests p WHERE p.state = 'pending'),
            gone AS (
                DELETE FROM {schema}.mt_events e USING upto u
                WHERE e.seq_id > u.lo AND e.seq_id <= u.hi AND e.stream_id LIKE 'tagtable-%' AND e.type = ANY(@types)
                  AND NOT (e.type = @recorded AND coalesce(e.data->>'requestId', '') = ANY(ARRAY(SELECT k FROM pending)))
                RETURNING 1),
            counted AS (SELECT count(*) AS n FROM gone),
            moved AS (
                UPDATE {schema}.event_retention r SET pruned_through = u.hi, events_pruned = r.events_pruned + c.n, pruned_at = now()
                FROM upto u, counted c WHERE r.id = 1 AND u.hi > r.pruned_through)
            SELECT c.n, u.hi, u.hi = u.lo + @chunk FROM upto u, counted c
            """, conn, tx);
        cmd.Parameters.AddWithValue("chunk", (long)chunkEvents);
        cmd.Parameters.AddWithValue("shard", ReconciliationProjection.Name + ":All");
        cmd.Parameters.AddWithValue("keep", options.EventRetention);
        cmd.Parameters.AddWithValue("types", PrunedTypes);
        cmd.Parameters.AddWithValue("recorded", TagTableEventTypes.Recorded);
        long pruned, to;
        bool full;
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            if (!await r.ReadAsync(ct)) throw new InvalidOperationException($"{schema}.event_retention has no row");
            (pruned, to, full) = (r.GetInt64(0), r.GetInt64(1), r.GetBoolean(2));
        }
        await tx.CommitAsync(ct);
        if (pruned > 0) prunedCounter.Add(pruned);
        return (pruned, to, full);
    }
}
