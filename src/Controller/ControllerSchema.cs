using Npgsql;
using TaggedMirror.Controller.Reconciliation;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller;

/// <summary>
/// The tables the controller owns (the device agents only read some of them): its projections' tables and the
/// reconciliation's. Created idempotently at every start, under an advisory lock so controllers starting together
/// do not race.
/// </summary>
internal static class ControllerSchema
{
    public static async Task MigrateAsync(NpgsqlDataSource dataSource, string schema, CancellationToken ct)
    {
        await using var conn = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using (var cmd = new NpgsqlCommand($"""
            SELECT pg_advisory_xact_lock(hashtext('tm-controller-schema'));
            CREATE SCHEMA IF NOT EXISTS {schema};
            {VolumeCatalogProjection.Ddl(schema)}
            {ResyncLogProjection.Ddl(schema)}
            """, conn, tx))
        {
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await ReconciliationProjection.MigrateAsync(conn, tx, schema, ct);
        await tx.CommitAsync(ct);
    }
}
