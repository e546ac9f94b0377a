using Npgsql;

namespace TaggedMirror.Hosting;

/// <summary>
/// The schema changes every process makes at its start (its tables, indexes and later columns, idempotently), made
/// so they take no lock on a table that already has what they add. <c>CREATE INDEX IF NOT EXISTS</c> takes a SHARE
/// lock on its table and <c>ALTER TABLE … ADD COLUMN IF NOT EXISTS</c> an ACCESS EXCLUSIVE one before either looks
/// whether there is anything to do, both held to the end of the start's transaction: a process starting beside
/// running ones then waited for their open transactions, stopped theirs meanwhile (a controller's lease renewals
/// behind it), and with two such statements could deadlock with them (an agent did, in CI: 40P01). Each change here
/// looks first (<c>to_regclass</c>, <c>pg_attribute</c>) and runs only when something is missing, which is only on
/// a schema's first start or the first start of a version that adds it.
/// </summary>
public static class SchemaChanges
{
    /// <summary>
    /// <c>CREATE INDEX <paramref name="index"/> ON <paramref name="on"/></c> in <paramref name="schema"/>, when no
    /// relation of that name exists there. <paramref name="on"/> is the rest of the statement: table, method,
    /// columns, predicate (<c>{schema}.t (a, b) WHERE c IS NULL</c>).
    /// </summary>
    public static string IndexIfMissing(string schema, string index, string on) => $"""
        DO $do$ BEGIN
            IF to_regclass('{schema}.{index}') IS NULL THEN
                CREATE INDEX {index} ON {on};
            END IF;
        END $do$;
        """;

    /// <summary><c>DROP INDEX</c> <paramref name="index"/> of <paramref name="schema"/> if there is one (an index a later version replaced).</summary>
    public static string IndexDropped(string schema, string index) => $"""
        DO $do$ BEGIN
            IF to_regclass('{schema}.{index}') IS NOT NULL THEN
                DROP INDEX {schema}.{index};
            END IF;
        END $do$;
        """;

    /// <summary><c>ALTER TABLE … ADD COLUMN <paramref name="column"/> <paramref name="definition"/></c>, when the table has no such column.</summary>
    public static string ColumnIfMissing(string schema, string table, string column, string definition) => $"""
        DO $do$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_attribute
                           WHERE attrelid = to_regclass('{schema}.{table}') AND attname = '{column}' AND NOT attisdropped) THEN
                ALTER TABLE {schema}.{table} ADD COLUMN {column} {definition};
            END IF;
        END $do$;
        """;

    /// <summary>
    /// Runs a start's migration (one transaction), again when PostgreSQL broke a deadlock by rolling it back: a few
    /// times, then the error goes to the caller (the process does not start).
    /// </summary>
    public static async Task RunAsync(Func<CancellationToken, Task> migrateOnce, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await migrateOnce(ct).ConfigureAwait(false);
                return;
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.DeadlockDetected && attempt < 5)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), ct).ConfigureAwait(false);
            }
        }
    }
}
