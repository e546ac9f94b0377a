using Npgsql;
using TaggedMirror.Hosting;

namespace TaggedMirror.DeviceAgent.TagTable;

/// <summary>
/// The tables the device agents own (one row set per device; the controller only reads them). Created
/// idempotently at every start, under an advisory lock so agents starting together do not race.
/// </summary>
internal static class DeviceSchema
{
    public static Task MigrateAsync(NpgsqlDataSource dataSource, string schema, CancellationToken ct) =>
        SchemaChanges.RunAsync(c => MigrateOnceAsync(dataSource, schema, c), ct);

    private static async Task MigrateOnceAsync(NpgsqlDataSource dataSource, string schema, CancellationToken ct)
    {
        await using var conn = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using (var cmd = new NpgsqlCommand($"""
            -- The same lock as the controller's tables and Marten's (EventStoreSetup): each creates the schema if
            -- missing, and two CREATE SCHEMA IF NOT EXISTS at once fail on pg_namespace's unique index (23505).
            SELECT pg_advisory_xact_lock(hashtextextended('TaggedMirror.EventStoreSetup:{schema}', 0));
            CREATE SCHEMA IF NOT EXISTS {schema};
            -- Where each device agent serves reads; agents register themselves at start.
            CREATE TABLE IF NOT EXISTS {schema}.devices (
                id text PRIMARY KEY,
                read_url text NOT NULL,
                started_at timestamptz NOT NULL DEFAULT now());
            -- A device's next offset per partition, written in the same transaction as its tag-table events.
            CREATE TABLE IF NOT EXISTS {schema}.device_offsets (
                device_id text NOT NULL,
                partition int NOT NULL,
                next_offset bigint NOT NULL,
                PRIMARY KEY (device_id, partition));
            -- Storage objects a device holds (M6): geometry, extension length, and whether it needs a full copy (set
            -- when the device's log was truncated under it; cleared by the device once the controller's full_copies
            -- record a full copy that covers the truncation).
            CREATE TABLE IF NOT EXISTS {schema}.device_objects (
                device_id text NOT NULL,
                object_id text NOT NULL,
                block_size int NOT NULL,
                object_blocks bigint NOT NULL,
                ext_blocks bigint NOT NULL DEFAULT 0,
                needs_full_copy boolean NOT NULL DEFAULT false,
                PRIMARY KEY (device_id, object_id));
            -- The newest owner epoch a device has seen per object and partition (from a fence or a write): it
            -- refuses that object's writes from older owners there. Written with the batch that raised it.
            CREATE TABLE IF NOT EXISTS {schema}.device_owner_epochs (
                device_id text NOT NULL,
                object_id text NOT NULL,
                partition int NOT NULL,
                owner_epoch bigint NOT NULL,
                PRIMARY KEY (device_id, object_id, partition));
            -- The live tag table (M3): entries still in flight, maintained inline with the tag-table events.
            CREATE TABLE IF NOT EXISTS {schema}.tag_table (
                device_id text NOT NULL,
                token bigint NOT NULL,
                controller_id int NOT NULL,
                epoch int NOT NULL,
                seq bigint NOT NULL,
                kind smallint NOT NULL,
                object_id text NOT NULL,
                first_block bigint NOT NULL,
                block_count int NOT NULL,
                extension boolean NOT NULL,
                partition int NOT NULL,
                topic_offset bigint NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (device_id, token));
            {SchemaChanges.IndexIfMissing(schema, "tag_table_tag", $"{schema}.tag_table (controller_id, epoch, seq)")}
            -- Who wrote each range of a device's objects (docs/design.md, "Who wrote a block"): a row per write, append
            -- or repair applied (a rebuild's replay too), written with its batch; rows whose whole range a later write
            -- to the object in the same partition covers are deleted with that write's batch, rows of a deleted object
            -- with the delete's, and a rebuild starts the device's rows again.
            CREATE TABLE IF NOT EXISTS {schema}.block_writes (
                device_id text NOT NULL,
                object_id text NOT NULL,
                partition int NOT NULL,
                topic_offset bigint NOT NULL,
                first_block bigint NOT NULL,
                block_count int NOT NULL,
                controller_id int NOT NULL,
                epoch int NOT NULL,
                seq bigint NOT NULL,
                kind smallint NOT NULL,
                owner_epoch bigint NOT NULL,
                principal text,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (device_id, object_id, partition, topic_offset));
            -- The ranges of an object by first block, for pruning covered rows and for "who wrote block N". Its object id
            -- is in the C collation, which no other index of the table has: a query comparing object_id COLLATE "C" can
            -- only be served by this index, whatever the statistics say (without them, the planner took the primary key's
            -- (device_id, object_id) prefix instead and read every row of the object for each write of a batch).
            {SchemaChanges.IndexIfMissing(schema, "block_writes_cover", $"{schema}.block_writes (device_id, object_id COLLATE \"C\", first_block)")}
            {SchemaChanges.IndexDropped(schema, "block_writes_range")}
            -- The most blocks one row of block_writes covers, per object: a row that starts further back than this from a
            -- block cannot cover it, so "who wrote block N" reads a narrow range of the index. Only ever raised.
            CREATE TABLE IF NOT EXISTS {schema}.block_write_spans (
                device_id text NOT NULL,
                object_id text NOT NULL,
                max_blocks int NOT NULL,
                PRIMARY KEY (device_id, object_id));
            -- Rebuilds of a device from its log (tm rebuild), one row each: the log's start and where the replay
            -- ends (per partition, JSON), whether the object files were deleted yet, what was replayed; the row
            -- without completed_at is the one running. Progress is written with each replayed batch.
            CREATE TABLE IF NOT EXISTS {schema}.device_rebuilds (
                device_id text NOT NULL,
                rebuild_id text NOT NULL,
                log_start jsonb NOT NULL,
                replay_until jsonb NOT NULL,
                wiped boolean NOT NULL DEFAULT false,
                transactions bigint NOT NULL DEFAULT 0,
                bytes bigint NOT NULL DEFAULT 0,
                refused bigint NOT NULL DEFAULT 0,
                started_at timestamptz NOT NULL DEFAULT now(),
                completed_at timestamptz,
                PRIMARY KEY (device_id, rebuild_id));
            """, conn, tx))
        {
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
    }
}
