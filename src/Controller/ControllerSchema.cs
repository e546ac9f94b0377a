using Npgsql;
using TaggedMirror.Controller.Reconciliation;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller;

/// <summary>
/// The tables the controller owns (the device agents only read some of them): epochs, leases, full copies done, its
/// projections' tables and the reconciliation's. Created idempotently at every start, under an advisory lock so controllers starting together
/// do not race, and without locking a table that has what the start would add (<see cref="Hosting.SchemaChanges"/>): a
/// controller starting beside a running one must not stop its lease renewals or its reconciliation.
/// </summary>
internal static class ControllerSchema
{
    public static Task MigrateAsync(NpgsqlDataSource dataSource, string schema, CancellationToken ct) =>
        Hosting.SchemaChanges.RunAsync(c => MigrateOnceAsync(dataSource, schema, c), ct);

    private static async Task MigrateOnceAsync(NpgsqlDataSource dataSource, string schema, CancellationToken ct)
    {
        await using var conn = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using (var cmd = new NpgsqlCommand($"""
            -- The same lock as the device agents' tables and Marten's (EventStoreSetup): each creates the schema if
            -- missing, and two CREATE SCHEMA IF NOT EXISTS at once fail on pg_namespace's unique index (23505).
            SELECT pg_advisory_xact_lock(hashtextextended('TaggedMirror.EventStoreSetup:{schema}', 0));
            CREATE SCHEMA IF NOT EXISTS {schema};
            -- Each controller start is a new epoch (M2): the counter behind it never goes back.
            CREATE TABLE IF NOT EXISTS {schema}.controller_epochs (
                controller_id int PRIMARY KEY,
                epoch int NOT NULL,
                started_at timestamptz NOT NULL DEFAULT now());
            -- Which controller owns a volume, fenced by its epoch.
            CREATE TABLE IF NOT EXISTS {schema}.volume_leases (
                volume text PRIMARY KEY,
                controller_id int NOT NULL,
                epoch int NOT NULL,
                expires_at timestamptz NOT NULL);
            -- Bumped whenever the lease passes to another process (another controller, or a new epoch of the same id).
            {Hosting.SchemaChanges.ColumnIfMissing(schema, "volume_leases", "owner_epoch", "bigint NOT NULL DEFAULT 1")}
            -- Full copies done, per mirror: the newest truncation of the target device's log each one covers (the
            -- version of its log_truncated event). The device clears its own "needs a full copy" mark from this.
            CREATE TABLE IF NOT EXISTS {schema}.full_copies (
                device_id text NOT NULL,
                object_id text NOT NULL,
                covers_truncation bigint NOT NULL,
                completed_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (device_id, object_id));
            -- Rebuilds of a device from its log (tm rebuild) as the controller drives them: the volumes whose mirrors
            -- it rebuilds, the phase (replaying, catching-up, verifying, done, failed) and the verifies that ended it.
            CREATE TABLE IF NOT EXISTS {schema}.rebuilds (
                rebuild_id text PRIMARY KEY,
                device_id text NOT NULL,
                volumes text[] NOT NULL,
                phase text NOT NULL,
                error text,
                verifies jsonb NOT NULL DEFAULT '[]',
                requested_at timestamptz NOT NULL DEFAULT now(),
                completed_at timestamptz);
            {Hosting.SchemaChanges.IndexIfMissing(schema, "rebuilds_device", $"{schema}.rebuilds (device_id, requested_at)")}
            {Access.ApiKeyStore.Ddl(schema)}
            {Hosting.Access.ServiceSecret.Ddl(schema)}
            {VolumeCatalogProjection.Ddl(schema)}
            {ResyncLogProjection.Ddl(schema)}
            {Intake.IntakeSchema.Ddl(schema)}
            {Retention.EventRetention.Ddl(schema)}
            """, conn, tx))
        {
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await ReconciliationProjection.MigrateAsync(conn, tx, schema, ct);
        await tx.CommitAsync(ct);
    }
}
