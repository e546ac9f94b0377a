using Npgsql;

namespace TaggedMirror.Hosting.Tests;

/// <summary>
/// A start's schema changes add what is missing and, when nothing is, lock nothing: checked against the real
/// PostgreSQL (<c>TM_PG</c> overrides the connection string) with another transaction holding the table meanwhile.
/// </summary>
public sealed class SchemaChangesTests
{
    private static readonly string Local = TestPostgres.ConnectionString;

    [Fact]
    public async Task a_change_adds_what_is_missing_and_waits_for_nobody_when_nothing_is()
    {
        var schema = "tm_schema_changes_" + Guid.NewGuid().ToString("N")[..8];
        await using var dataSource = NpgsqlDataSource.Create(Local);
        var changes = SchemaChanges.ColumnIfMissing(schema, "t", "b", "bigint NOT NULL DEFAULT 7")
            + SchemaChanges.IndexIfMissing(schema, "t_b", $"{schema}.t (b) WHERE a IS NOT NULL");
        try
        {
            await TestPostgres.ExecuteAsync(dataSource, $"CREATE SCHEMA {schema}; CREATE TABLE {schema}.t (a int); INSERT INTO {schema}.t VALUES (1);");
            await TestPostgres.ExecuteAsync(dataSource, changes);
            Assert.Equal(7L, await TestPostgres.ScalarAsync(dataSource, $"SELECT b FROM {schema}.t"));
            Assert.Equal(1L, await TestPostgres.ScalarAsync(dataSource, $"SELECT count(*) FROM pg_indexes WHERE schemaname = '{schema}' AND indexname = 't_b'"));

            // Another process's transaction has written the table and stays open: the same changes again have nothing to
            // do and must not wait for it (ALTER TABLE and CREATE INDEX take their locks before looking).
            await using var conn = await dataSource.OpenConnectionAsync();
            await using var tx = await conn.BeginTransactionAsync();
            await using (var hold = new NpgsqlCommand($"UPDATE {schema}.t SET a = a", conn, tx))
                await hold.ExecuteNonQueryAsync();
            await TestPostgres.ExecuteAsync(dataSource, "SET lock_timeout = '2s';" + changes);
            await tx.RollbackAsync();
        }
        finally
        {
            await TestPostgres.ExecuteAsync(dataSource, $"DROP SCHEMA IF EXISTS {schema} CASCADE");
        }
    }

    [Fact]
    public async Task a_deadlocked_migration_is_run_again_and_other_errors_are_not()
    {
        var attempts = 0;
        await SchemaChanges.RunAsync(_ => ++attempts < 3 ? throw Deadlock() : Task.CompletedTask, CancellationToken.None);
        Assert.Equal(3, attempts);

        attempts = 0;
        await Assert.ThrowsAsync<PostgresException>(() => SchemaChanges.RunAsync(_ => { attempts++; throw Deadlock(); }, CancellationToken.None));
        Assert.Equal(5, attempts);

        attempts = 0;
        await Assert.ThrowsAsync<InvalidOperationException>(() => SchemaChanges.RunAsync(_ => { attempts++; throw new InvalidOperationException(); }, CancellationToken.None));
        Assert.Equal(1, attempts);
    }

    private static PostgresException Deadlock() => new("deadlock detected", "ERROR", "ERROR", PostgresErrorCodes.DeadlockDetected);
}
