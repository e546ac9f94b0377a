using System.Diagnostics;
using Npgsql;
using TaggedMirror.Cli.Commands;

namespace TaggedMirror.Cli.Tests;

/// <summary>
/// <c>tm bench-growth</c>'s snapshot against the real PostgreSQL: every table of the schema with its rows, and the
/// events by type from Marten's <c>mt_events</c> (it read the product's table from before Marten, gone since, and
/// counted no event at all). <c>TM_PG</c> overrides the connection string.
/// </summary>
public sealed class BenchGrowthSnapshotTests
{
    [Fact]
    public async Task a_snapshot_counts_the_events_of_martens_table_by_type_and_every_tables_rows()
    {
        await using var db = NpgsqlDataSource.Create(Environment.GetEnvironmentVariable("TM_PG") ?? "Host=127.0.0.1;Username=tm;Password=tm;Database=tm");
        var schema = "t_" + Guid.NewGuid().ToString("N");
        await using (var create = db.CreateCommand($"""
            CREATE SCHEMA {schema};
            CREATE TABLE {schema}.mt_events (seq_id bigint PRIMARY KEY, type varchar(500) NOT NULL);
            INSERT INTO {schema}.mt_events VALUES (1, 'tag_recorded'), (2, 'tag_recorded'), (3, 'tag_retired');
            CREATE TABLE {schema}.tag_table (token bigint);
            """))
        {
            await create.ExecuteNonQueryAsync();
        }
        try
        {
            var s = await BenchGrowthCommand.SnapshotAsync(db, schema, "after", Stopwatch.StartNew(), CancellationToken.None);

            Assert.Equal(3, s.Events);
            Assert.Equal(new Dictionary<string, long> { ["tag_recorded"] = 2, ["tag_retired"] = 1 }, s.EventsByType);
            Assert.Equal([("mt_events", 3L), ("tag_table", 0L)], s.Tables.Select(t => (t.Table, t.Rows)));
        }
        finally
        {
            await using var drop = db.CreateCommand($"DROP SCHEMA {schema} CASCADE");
            await drop.ExecuteNonQueryAsync();
        }
    }
}
