using System.Globalization;
using JasperFx.Events;
using Marten;
using Marten.Events.Projections;
using Npgsql;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.TagTable;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>
/// M4, flow 5: an asynchronous projection over every tag-table stream (and the volume and resync streams), run by
/// Marten's async daemon in the store's sequence order, its progress in the same transaction as its own tables.
/// <para>
/// Per tag it keeps which mirrors recorded it; per device and partition, the latest barrier passed. A tag
/// recorded on some mirrors is provably never coming to mirror D once D passed a barrier covering it: the
/// barrier's events follow D's entries in D's stream, and this projection reads in commit order, so when it
/// sees the barrier it has seen every entry D will ever make for that tag. Then it asks for a resync of
/// exactly that write's range. A tag every mirror has (or had repaired) whose entries are still live after a
/// grace period lost its tokens (say the controller died before piggybacking them): it asks the owning
/// controller to send those tokens, and asks again every 20 s while they stay live, so tables drain. Requests
/// go to an outbox in the same transaction and are published on the bus after commit (and then deleted), so a
/// crash never loses or half-sends a decision and the outbox holds only what is not published yet.
/// </para>
/// </summary>
internal sealed class ReconciliationProjection(string schema, ControllerOptions options) : IProjection
{
    /// <summary>The projection's name in Marten's progress table.</summary>
    public const string Name = "reconciliation";

    /// <summary>Creates the projection's tables idempotently.</summary>
    public static async Task MigrateAsync(NpgsqlConnection c, NpgsqlTransaction t, string schemaName, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"""
            CREATE TABLE IF NOT EXISTS {schemaName}.recon_volumes (volume text PRIMARY KEY, devices text[] NOT NULL);
            CREATE TABLE IF NOT EXISTS {schemaName}.recon_entries (
                controller_id int NOT NULL, epoch int NOT NULL, seq bigint NOT NULL, device_id text NOT NULL,
                volume text NOT NULL, token bigint NOT NULL, first_block bigint NOT NULL, block_count int NOT NULL,
                extension boolean NOT NULL, recorded_at timestamptz NOT NULL, repair boolean NOT NULL DEFAULT false,
                retired boolean NOT NULL DEFAULT false, retire_requested boolean NOT NULL DEFAULT false,
                PRIMARY KEY (controller_id, epoch, seq, device_id));
            {SchemaChanges.IndexIfMissing(schemaName, "recon_entries_token", $"{schemaName}.recon_entries (device_id, token)")}
            {SchemaChanges.ColumnIfMissing(schemaName, "recon_entries", "trace_parent", "text")}
            {SchemaChanges.ColumnIfMissing(schemaName, "recon_entries", "retire_requested_at", "timestamptz")}
            {SchemaChanges.ColumnIfMissing(schemaName, "recon_entries", "owner_epoch", "bigint NOT NULL DEFAULT 0")}
            -- The newest owner fence each device passed for each volume.
            CREATE TABLE IF NOT EXISTS {schemaName}.recon_fences (
                device_id text NOT NULL, volume text NOT NULL, owner_epoch bigint NOT NULL,
                PRIMARY KEY (device_id, volume));
            CREATE TABLE IF NOT EXISTS {schemaName}.recon_repaired (
                controller_id int NOT NULL, epoch int NOT NULL, seq bigint NOT NULL, device_id text NOT NULL,
                PRIMARY KEY (controller_id, epoch, seq, device_id));
            CREATE TABLE IF NOT EXISTS {schemaName}.recon_barriers (
                device_id text NOT NULL, partition int NOT NULL, controller_id int NOT NULL, epoch int NOT NULL, up_to_seq bigint NOT NULL,
                PRIMARY KEY (device_id, partition, controller_id));
            -- The coverage rule (flow 4), the one definition every query uses: device d covers tag (c, e, s) by
            -- barriers when it has passed barriers of controller c and, on every partition it has passed one on, the
            -- latest is of a later epoch, or of the same epoch and at or past s.
            CREATE OR REPLACE FUNCTION {schemaName}.barriers_cover(d text, c int, e int, s bigint) RETURNS boolean
            LANGUAGE sql STABLE AS $fn$
                SELECT EXISTS (SELECT 1 FROM {schemaName}.recon_barriers b WHERE b.device_id = d AND b.controller_id = c)
                   AND NOT EXISTS (SELECT 1 FROM {schemaName}.recon_barriers b
                                   WHERE b.device_id = d AND b.controller_id = c
                                     AND (b.epoch < e OR (b.epoch = e AND b.up_to_seq < s)))
            $fn$;
            CREATE TABLE IF NOT EXISTS {schemaName}.recon_requested (
                controller_id int NOT NULL, epoch int NOT NULL, seq bigint NOT NULL, device_id text NOT NULL,
                requested_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (controller_id, epoch, seq, device_id));
            CREATE TABLE IF NOT EXISTS {schemaName}.recon_outbox (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind text NOT NULL, payload jsonb NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(), published_at timestamptz);
            {SchemaChanges.IndexIfMissing(schemaName, "recon_outbox_unpublished", $"{schemaName}.recon_outbox (id) WHERE published_at IS NULL")}
            -- Rows are deleted when published (ReconciliationService); rows a version that only marked them left behind go now.
            DELETE FROM {schemaName}.recon_outbox WHERE published_at IS NOT NULL;
            """, c, t);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    public Task ApplyAsync(IDocumentOperations operations, IReadOnlyList<IEvent> events, CancellationToken cancellation)
    {
        // The decisions on the timer take the same lock: they and a batch never interleave.
        operations.QueueSqlCommand(_lock);
        // Entries recorded and retired are most of the events: each run of them goes in two statements (see TagRun).
        var run = new TagRun(schema);
        foreach (var e in events)
        {
            switch (e.Data)
            {
                case TagRecorded r:
                    run.Recorded(operations, e, r, Device(e));
                    break;
                case TagRetired r:
                    run.Retired(Device(e), r.Token);
                    break;
                default:
                    run.Flush(operations);
                    Record(operations, e);
                    break;
            }
        }
        run.Flush(operations);
        if (Pacing.TryBegin())
        {
            foreach (var statement in _decisions)
                operations.QueueSqlCommand(statement);
            if (RetireLostPacing.Due()) operations.QueueSqlCommand(_retireLost);
        }
        return Task.CompletedTask;
    }

    /// <summary>
    /// When the decisions last ran, and whether a batch left them owed (<see cref="ControllerOptions.DecideInterval"/>).
    /// Skipping them in a batch is safe because they are idempotent and read only the tables: whoever runs them next
    /// (the next batch, or <see cref="ReconciliationService"/> once the skipping batch committed) decides over
    /// everything recorded so far. Only their delay changes, by at most the interval.
    /// </summary>
    public DecisionPacing Pacing { get; } = new(options.DecideInterval);

    private void Record(IDocumentOperations batch, IEvent e)
    {
        switch (e.Data)
        {
            case VolumeCreated v:
                {
                    Add(batch, $"INSERT INTO {schema}.recon_volumes VALUES (^, ^) ON CONFLICT DO NOTHING", v.Name, v.Mirrors.Select(m => m.DeviceId).ToArray());
                    break;
                }
            case MirrorAttached a:
                {
                    // The new mirror gets every block by a full copy: the tags live before it joined are not missing there.
                    Add(batch, $"UPDATE {schema}.recon_volumes SET devices = array_append(array_remove(devices, ^), ^) WHERE volume = ^", a.DeviceId, a.DeviceId, Names.VolumeOfObject(a.ObjectId));
                    Add(batch, $"""
                    INSERT INTO {schema}.recon_repaired (controller_id, epoch, seq, device_id)
                    SELECT DISTINCT controller_id, epoch, seq, ^ FROM {schema}.recon_entries WHERE volume = ^ ON CONFLICT DO NOTHING
                    """, a.DeviceId, Names.VolumeOfObject(a.ObjectId));
                    break;
                }
            case MirrorDetached d:
                {
                    // Its object is removed: its entries of this volume no longer hold anything a peer could lack.
                    var volume = VolumeOfStream(e);
                    Add(batch, $"UPDATE {schema}.recon_volumes SET devices = array_remove(devices, ^) WHERE volume = ^", d.DeviceId, volume);
                    Add(batch, $"UPDATE {schema}.recon_entries SET retired = true WHERE volume = ^ AND device_id = ^", volume, d.DeviceId);
                    break;
                }
            case VolumeDeleted deleted:
                {
                    Add(batch, $"DELETE FROM {schema}.recon_volumes WHERE volume = ^", deleted.Name);
                    Add(batch, $"UPDATE {schema}.recon_entries SET retired = true WHERE volume = ^", deleted.Name);
                    break;
                }
            case BarrierPassed b:
                {
                    Add(batch, $"""
                    INSERT INTO {schema}.recon_barriers VALUES (^, ^, ^, ^, ^)
                    ON CONFLICT (device_id, partition, controller_id) DO UPDATE SET epoch = excluded.epoch, up_to_seq = excluded.up_to_seq
                    WHERE (recon_barriers.epoch, recon_barriers.up_to_seq) < (excluded.epoch, excluded.up_to_seq)
                    """, Device(e), b.Partition, b.ControllerId, b.Epoch, b.UpToSeq);
                    break;
                }
            case FencePassed f:
                {
                    Add(batch, $"""
                    INSERT INTO {schema}.recon_fences VALUES (^, ^, ^)
                    ON CONFLICT (device_id, volume) DO UPDATE SET owner_epoch = greatest(recon_fences.owner_epoch, excluded.owner_epoch)
                    """, Device(e), Names.VolumeOfObject(f.ObjectId), f.OwnerEpoch);
                    break;
                }
            case ResyncCompleted r:
                {
                    foreach (var completed in r.Completed())
                    {
                        if (!Tag.TryParse(completed, out var tag)) continue;
                        Add(batch, $"INSERT INTO {schema}.recon_repaired VALUES (^, ^, ^, ^) ON CONFLICT DO NOTHING", tag.ControllerId, tag.Epoch, tag.Seq, r.Target);
                    }
                    break;
                }
        }
    }

    private readonly string _lock = $"SELECT pg_advisory_xact_lock(hashtextextended('TaggedMirror.Reconciliation:{schema}', 0))";

    /// <summary>
    /// Set-based decisions over the (small) tables of unsettled tags, one statement each. Idempotent: queued after
    /// every batch, and run on a timer by <see cref="ReconciliationService"/> under the same lock, since several
    /// decisions depend on time (grace periods, requests asked again) and idle devices record no events to trigger them.
    /// </summary>
    private readonly string[] _decisions = FrequentDecisions(schema);

    private readonly string _retireLost = RetireLost(schema, options.RetireMatchedAfter);

    /// <summary>
    /// The retirement of entries live past the grace period runs with the others only every <see cref="RetireLostEvery"/>:
    /// it acts on entries seconds old, and reads every unsettled entry (under writes it was the controller's costliest
    /// statement run five times a second; docs/benchmarks.md, "The retire decision split"). Repaired tags are retired
    /// by <see cref="RetireRepaired"/> with every decision.
    /// </summary>
    internal Every RetireLostPacing { get; } = new(RetireLostEvery(options));

    /// <summary>
    /// A quarter of the grace period, between the decision interval and one second (or the decision interval, when that
    /// is longer): a lost token is asked back at most that much later.
    /// </summary>
    internal static TimeSpan RetireLostEvery(ControllerOptions options)
    {
        var decide = options.DecideInterval.Ticks;
        return TimeSpan.FromTicks(Math.Clamp(options.RetireMatchedAfter.Ticks / 4, decide, Math.Max(decide, TimeSpan.TicksPerSecond)));
    }

    /// <summary>Runs the decisions in the caller's transaction, under the lock every batch of the daemon takes.</summary>
    public async Task DecideAsync(NpgsqlConnection c, NpgsqlTransaction t, CancellationToken ct)
    {
        await using var batch = new NpgsqlBatch(c, t);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(_lock));
        foreach (var statement in _decisions)
            batch.BatchCommands.Add(new NpgsqlBatchCommand(statement));
        if (RetireLostPacing.Due()) batch.BatchCommands.Add(new NpgsqlBatchCommand(_retireLost));
        await batch.ExecuteNonQueryAsync(ct);
    }

    /// <summary>The decisions, in order. Each is queued on its own by a daemon batch (Marten's QueueSqlCommand), which refuses any ";".</summary>
    internal static string[] Decisions(string schema, TimeSpan retireAfter) => [.. FrequentDecisions(schema), RetireLost(schema, retireAfter)];

    /// <summary>The decisions run every <see cref="ControllerOptions.DecideInterval"/> (and first, with JIT off for the transaction).</summary>
    private static string[] FrequentDecisions(string schema)
    {
        return
        [
            // With a few thousand unsettled tags the decisions' plans cost past jit_above_cost (100,000), and compiling
            // them took longer than running them (docs/benchmarks.md, "Decisions without JIT"). For this transaction only.
            "SET LOCAL jit = off",
            $"""
            -- Tags every entry of which is retired are settled: forget them. Unless a mirror of the volume lacks the
            -- write and has not had it repaired: the entries were retired because their mirror left the volume (a detach
            -- retires them, and so does the device's removal of the object), and the write must still reach the others.
            -- (A repair's own tag is meant for its target alone.)
            WITH settled AS (
                SELECT e.controller_id, e.epoch, e.seq FROM {schema}.recon_entries e
                GROUP BY 1, 2, 3
                HAVING bool_and(e.retired)
                   AND (bool_or(e.repair) OR NOT EXISTS (
                        SELECT 1 FROM {schema}.recon_volumes v CROSS JOIN LATERAL unnest(v.devices) AS d(device)
                        WHERE v.volume = min(e.volume)
                          AND NOT EXISTS (SELECT 1 FROM {schema}.recon_entries x
                                          WHERE (x.controller_id, x.epoch, x.seq, x.device_id) = (e.controller_id, e.epoch, e.seq, d.device))
                          AND NOT EXISTS (SELECT 1 FROM {schema}.recon_repaired r
                                          WHERE (r.controller_id, r.epoch, r.seq, r.device_id) = (e.controller_id, e.epoch, e.seq, d.device)))))
            , gone AS (
                DELETE FROM {schema}.recon_entries e USING settled s
                WHERE (e.controller_id, e.epoch, e.seq) = (s.controller_id, s.epoch, s.seq) RETURNING e.controller_id, e.epoch, e.seq)
            DELETE FROM {schema}.recon_repaired r USING gone g WHERE (r.controller_id, r.epoch, r.seq) = (g.controller_id, g.epoch, g.seq)
            """,
            $"""
            -- A request that was not carried out (controller down, no healthy source) is asked again.
            DELETE FROM {schema}.recon_requested r
            WHERE r.requested_at < now() - interval '20 seconds'
              AND NOT EXISTS (SELECT 1 FROM {schema}.recon_repaired p
                              WHERE (p.controller_id, p.epoch, p.seq, p.device_id) = (r.controller_id, r.epoch, r.seq, r.device_id))
            """,
            $"""
            -- Missing and provably never coming: the target passed, on every partition it has a barrier row for,
            -- a barrier of the tag's controller covering the tag (a later epoch, or the same epoch and a seq at or past
            -- it), or it passed the fence of a later owner of the volume (in the partition all of the object's writes
            -- go to: an older owner's write it has no entry for by then is refused if it ever comes).
            WITH tags AS (
                SELECT controller_id, epoch, seq, volume, min(device_id) AS source, min(first_block) AS first_block,
                       min(block_count) AS block_count, bool_or(extension) AS extension, min(trace_parent) AS trace_parent,
                       max(owner_epoch) AS owner_epoch, array_agg(device_id) AS devices
                FROM {schema}.recon_entries WHERE NOT repair GROUP BY 1, 2, 3, 4)
            , missing AS (
                SELECT t.controller_id, t.epoch, t.seq, t.volume, t.source, t.first_block, t.block_count, t.extension,
                       t.trace_parent, t.owner_epoch, d.device AS target
                FROM tags t JOIN {schema}.recon_volumes v ON v.volume = t.volume CROSS JOIN LATERAL unnest(v.devices) AS d(device)
                -- A tag with an entry on every mirror lacks none: dropped before the per-mirror probes below, which
                -- would each find its entry (most tags, most of the time: the same rows result, several times sooner).
                WHERE NOT (v.devices <@ t.devices)
                  AND NOT EXISTS (SELECT 1 FROM {schema}.recon_entries e
                                  WHERE (e.controller_id, e.epoch, e.seq, e.device_id) = (t.controller_id, t.epoch, t.seq, d.device))
                  AND NOT EXISTS (SELECT 1 FROM {schema}.recon_repaired r
                                  WHERE (r.controller_id, r.epoch, r.seq, r.device_id) = (t.controller_id, t.epoch, t.seq, d.device))
                  AND NOT EXISTS (SELECT 1 FROM {schema}.recon_requested q
                                  WHERE (q.controller_id, q.epoch, q.seq, q.device_id) = (t.controller_id, t.epoch, t.seq, d.device))
                  AND ({schema}.barriers_cover(d.device, t.controller_id, t.epoch, t.seq)
                       OR EXISTS (SELECT 1 FROM {schema}.recon_fences f
                                  WHERE f.device_id = d.device AND f.volume = t.volume AND f.owner_epoch > t.owner_epoch)))
            , requested AS (
                INSERT INTO {schema}.recon_requested (controller_id, epoch, seq, device_id)
                SELECT controller_id, epoch, seq, target FROM missing RETURNING 1)
            INSERT INTO {schema}.recon_outbox (kind, payload)
            SELECT 'resync', jsonb_build_object(
                'volume', volume, 'tag', controller_id || ':' || epoch || ':' || seq, 'firstBlock', first_block,
                'blockCount', block_count, 'extension', extension, 'sourceDevice', source, 'targetDevice', target,
                'traceParent', trace_parent)
            FROM missing
            """,
            RetireRepaired(schema),
        ];
    }

    /// <summary>
    /// Repaired tags on every mirror (recorded or repaired) are retired at once: the write path never returns a repaired
    /// tag's tokens, and a volume has converged after an outage only once they are. Read from the repairs (empty but
    /// after an outage, a resync or an attach), so it costs next to nothing under writes and runs with the other
    /// decisions.
    /// </summary>
    private static string RetireRepaired(string schema) => $"""
        WITH tags AS (
            SELECT e.controller_id, e.epoch, e.seq, e.volume, array_agg(e.device_id) AS devices
            FROM {schema}.recon_entries e
            WHERE (e.controller_id, e.epoch, e.seq) IN (SELECT controller_id, epoch, seq FROM {schema}.recon_repaired)
            GROUP BY 1, 2, 3, 4)
        , matched AS (
            SELECT t.* FROM tags t JOIN {schema}.recon_volumes v ON v.volume = t.volume
            WHERE {OnEveryMirror(schema)})
        {AskToRetire(schema)}
        """;

    /// <summary>
    /// Entries live past the grace period (their tokens were lost: the owner died holding them, or a repair's own entry):
    /// every unsettled tag is read, so this runs only every <see cref="RetireLostEvery"/>, not with every decision.
    /// It matches the repaired tags too, so it alone is the whole retire rule (which is what the properties check).
    /// </summary>
    private static string RetireLost(string schema, TimeSpan retireAfter)
    {
        var grace = $"interval '{retireAfter.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)} milliseconds'";
        return $"""
        WITH tags AS (
            SELECT e.controller_id, e.epoch, e.seq, e.volume, max(e.recorded_at) AS last_recorded,
                   array_agg(e.device_id) AS devices
            FROM {schema}.recon_entries e GROUP BY 1, 2, 3, 4)
        , matched AS (
            SELECT t.* FROM tags t JOIN {schema}.recon_volumes v ON v.volume = t.volume
            -- A repair is matched once applied: it was meant for its target alone.
            WHERE (EXISTS (SELECT 1 FROM {schema}.recon_entries x
                           WHERE (x.controller_id, x.epoch, x.seq) = (t.controller_id, t.epoch, t.seq) AND x.repair)
                   AND t.last_recorded < now() - {grace})
            OR ({OnEveryMirror(schema)}
              AND (t.last_recorded < now() - {grace}
                   OR EXISTS (SELECT 1 FROM {schema}.recon_repaired r WHERE (r.controller_id, r.epoch, r.seq) = (t.controller_id, t.epoch, t.seq)))))
        {AskToRetire(schema)}
        """;
    }

    /// <summary>Tag <c>t</c> is on every mirror of volume <c>v</c>: recorded there, or repaired there.</summary>
    private static string OnEveryMirror(string schema) => $"""
        NOT EXISTS (
                SELECT 1 FROM unnest(v.devices) AS d(device)
                WHERE d.device <> ALL (t.devices)
                  AND NOT EXISTS (SELECT 1 FROM {schema}.recon_repaired r
                                  WHERE (r.controller_id, r.epoch, r.seq, r.device_id) = (t.controller_id, t.epoch, t.seq, d.device)))
        """;

    /// <summary>
    /// Have the owner send the <c>matched</c> tags' live tokens. Asked again while not retired: the request is lost when
    /// no controller owned the volume as it arrived, or the owner died holding the tokens, and the entry would stay live
    /// (and be acknowledged again every few seconds) forever. Never twice within 20 s, whichever statement asks.
    /// </summary>
    private static string AskToRetire(string schema) => $"""
        , marked AS (
            UPDATE {schema}.recon_entries e SET retire_requested = true, retire_requested_at = now() FROM matched m
            WHERE (e.controller_id, e.epoch, e.seq) = (m.controller_id, m.epoch, m.seq) AND NOT e.retired
              AND (NOT e.retire_requested OR coalesce(e.retire_requested_at, '-infinity') < now() - interval '20 seconds')
            RETURNING e.volume, e.device_id, e.token, e.controller_id || ':' || e.epoch || ':' || e.seq AS tag)
        INSERT INTO {schema}.recon_outbox (kind, payload)
        SELECT 'retire', jsonb_build_object('volume', volume,
               'entries', jsonb_agg(jsonb_build_object('deviceId', device_id, 'token', token, 'tag', tag)))
        FROM marked GROUP BY volume
        """;

    /// <summary>
    /// A run of <c>tag_recorded</c> and <c>tag_retired</c> events between two others, written as one insert of every
    /// entry and then one update of every retirement (arrays unnested) instead of a statement per event, each parsed
    /// anew: under writes those were two thirds of the statements the daemon ran. The same rows result as event by
    /// event: a device retires a token only after recording it, in its own stream, so a retirement never precedes the
    /// entry it retires within a run; should an entry come for a token the run already retires (a device recording the
    /// same token again), the run is written first, keeping the order. Other events end the run: a detach or a
    /// deletion retires what was recorded before it, not after.
    /// </summary>
    private sealed class TagRun(string schema)
    {
        private readonly List<(int ControllerId, int Epoch, long Seq, string Device, string Volume, long Token, long FirstBlock, int BlockCount,
            bool Extension, DateTimeOffset RecordedAt, bool Repair, string? TraceParent, long OwnerEpoch)> _recorded = [];
        private readonly List<(string Device, long Token)> _retired = [];
        private readonly HashSet<(string Device, long Token)> _retiredKeys = [];

        public void Recorded(IDocumentOperations batch, IEvent e, TagRecorded r, string device)
        {
            if (_retiredKeys.Contains((device, r.Token))) Flush(batch);
            // A repair's own tag is meant for its target only: never "missing" elsewhere, but kept so that one whose
            // token was lost is retired too.
            _recorded.Add((r.Tag.ControllerId, r.Tag.Epoch, r.Tag.Seq, device, Names.VolumeOfObject(r.ObjectId), r.Token, r.FirstBlock, r.BlockCount,
                r.Extension, e.Timestamp.ToUniversalTime(), r.Kind == TransactionKind.Repair, r.TraceParent, r.OwnerEpoch));
        }

        public void Retired(string device, long token)
        {
            _retired.Add((device, token));
            _retiredKeys.Add((device, token));
        }

        public void Flush(IDocumentOperations batch)
        {
            if (_recorded.Count > 0)
            {
                Add(batch, $"""
                    INSERT INTO {schema}.recon_entries (controller_id, epoch, seq, device_id, volume, token, first_block, block_count, extension, recorded_at, repair, trace_parent, owner_epoch)
                    SELECT * FROM unnest(^::int[], ^::int[], ^::bigint[], ^::text[], ^::text[], ^::bigint[], ^::bigint[], ^::int[], ^::boolean[], ^::timestamptz[], ^::boolean[], ^::text[], ^::bigint[])
                    ON CONFLICT DO NOTHING
                    """,
                    _recorded.Select(x => x.ControllerId).ToArray(), _recorded.Select(x => x.Epoch).ToArray(), _recorded.Select(x => x.Seq).ToArray(),
                    _recorded.Select(x => x.Device).ToArray(), _recorded.Select(x => x.Volume).ToArray(), _recorded.Select(x => x.Token).ToArray(),
                    _recorded.Select(x => x.FirstBlock).ToArray(), _recorded.Select(x => x.BlockCount).ToArray(), _recorded.Select(x => x.Extension).ToArray(),
                    _recorded.Select(x => x.RecordedAt).ToArray(), _recorded.Select(x => x.Repair).ToArray(), _recorded.Select(x => x.TraceParent).ToArray(),
                    _recorded.Select(x => x.OwnerEpoch).ToArray());
                _recorded.Clear();
            }
            if (_retired.Count > 0)
            {
                Add(batch, $"""
                    UPDATE {schema}.recon_entries e SET retired = true FROM unnest(^::text[], ^::bigint[]) AS r(device_id, token)
                    WHERE e.device_id = r.device_id AND e.token = r.token
                    """,
                    _retired.Select(x => x.Device).ToArray(), _retired.Select(x => x.Token).ToArray());
                _retired.Clear();
                _retiredKeys.Clear();
            }
        }
    }

    /// <summary>True at most once per <paramref name="interval"/> (the first time at once). Thread-safe.</summary>
    internal sealed class Every(TimeSpan interval)
    {
        private readonly Lock _gate = new();
        private long _last = long.MinValue;

        public bool Due()
        {
            lock (_gate)
            {
                var now = System.Diagnostics.Stopwatch.GetTimestamp();
                if (_last != long.MinValue && System.Diagnostics.Stopwatch.GetElapsedTime(_last, now) < interval) return false;
                _last = now;
                return true;
            }
        }
    }

    /// <summary>See <see cref="Pacing"/>. Thread-safe: the daemon's batches and the decision loop share it.</summary>
    internal sealed class DecisionPacing(TimeSpan interval)
    {
        private readonly Lock _gate = new();
        private long _last = long.MinValue;
        private bool _skipped;
        private bool _owed;

        /// <summary>True (and counted as run now) when the decisions may run; else records that a batch skipped them.</summary>
        public bool TryBegin()
        {
            lock (_gate)
            {
                var now = System.Diagnostics.Stopwatch.GetTimestamp();
                if (_last != long.MinValue && System.Diagnostics.Stopwatch.GetElapsedTime(_last, now) < interval)
                {
                    _skipped = true;
                    return false;
                }
                _last = now;
                _owed = false;
                return true;
            }
        }

        /// <summary>After a batch committed: its skipped decisions are owed now (they must see what it recorded). True when owed.</summary>
        public bool Committed()
        {
            lock (_gate)
            {
                _owed |= _skipped;
                _skipped = false;
                return _owed;
            }
        }

        /// <summary>How long until owed decisions may run; null when none are owed.</summary>
        public TimeSpan? OwedIn()
        {
            lock (_gate)
            {
                if (!_owed) return null;
                var since = _last == long.MinValue ? interval : System.Diagnostics.Stopwatch.GetElapsedTime(_last);
                return since >= interval ? TimeSpan.Zero : interval - since;
            }
        }

        /// <summary>Counts decisions run outside a batch (the decision loop) as run now.</summary>
        public void Ran()
        {
            lock (_gate)
            {
                _last = System.Diagnostics.Stopwatch.GetTimestamp();
                _owed = false;
            }
        }
    }

    private static string VolumeOfStream(IEvent e) => e.StreamKey!["volume-".Length..];

    private static string Device(IEvent e) => e.StreamKey![(e.StreamKey!.IndexOf('-', StringComparison.Ordinal) + 1)..];

    private static void Add(IDocumentOperations batch, string sql, params object[] values) => batch.QueueSqlCommand('^', sql, values);
}
