using Npgsql;

namespace TaggedMirror.Hosting.Tests;

/// <summary>
/// Tables PostgreSQL never analyzed get statistics once they hold rows, and only those: against the real PostgreSQL
/// (<c>TM_PG</c> overrides the connection string), autovacuum off on the test's tables so that only the code under test
/// can analyze them.
/// </summary>
public sealed class FirstStatisticsTests
{
    [Fact]
    public async Task a_filled_table_never_analyzed_is_analyzed_once_and_small_unlisted_or_analyzed_ones_are_left_alone()
    {
        var schema = "tm_first_stats_" + Guid.NewGuid().ToString("N")[..8];
        await using var dataSource = NpgsqlDataSource.Create(TestPostgres.ConnectionString);
        try
        {
            await TestPostgres.ExecuteAsync(dataSource, $"""
                CREATE SCHEMA {schema};
                CREATE TABLE {schema}.events (seq bigint PRIMARY KEY, data text) WITH (autovacuum_enabled = false);
                CREATE TABLE {schema}.small (seq bigint PRIMARY KEY) WITH (autovacuum_enabled = false);
                CREATE TABLE {schema}.unlisted (seq bigint PRIMARY KEY) WITH (autovacuum_enabled = false);
                INSERT INTO {schema}.events SELECT g, 'x' FROM generate_series(1, 5000) g;
                INSERT INTO {schema}.small SELECT g FROM generate_series(1, 10) g;
                INSERT INTO {schema}.unlisted SELECT g FROM generate_series(1, 5000) g;
                """);
            await WaitForCountsAsync(dataSource, schema);
            string[] tables = ["events", "small"];

            // Without statistics the planner takes a third of the table for a range past its end: the whole table is read.
            Assert.Contains("Seq Scan", await PlanAsync(dataSource, $"SELECT seq FROM {schema}.events WHERE seq >= 4990 ORDER BY seq"), StringComparison.Ordinal);

            var analyzed = await FirstStatistics.AnalyzeNeverAnalyzedAsync(dataSource, schema, tables, FirstStatistics.MinimumRows, CancellationToken.None);
            Assert.Equal(["events"], analyzed);
            Assert.Equal(1L, await TestPostgres.ScalarAsync(dataSource, $"SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = '{schema}' AND relname = 'events' AND last_analyze IS NOT NULL"));
            Assert.Equal(0L, await TestPostgres.ScalarAsync(dataSource, $"SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = '{schema}' AND relname <> 'events' AND last_analyze IS NOT NULL"));
            Assert.DoesNotContain("Seq Scan", await PlanAsync(dataSource, $"SELECT seq FROM {schema}.events WHERE seq >= 4990 ORDER BY seq"), StringComparison.Ordinal);

            // Analyzed once: later rows are autovacuum's, and the next look does nothing.
            await TestPostgres.ExecuteAsync(dataSource, $"INSERT INTO {schema}.events SELECT g, 'x' FROM generate_series(5001, 10000) g");
            Assert.Empty(await FirstStatistics.AnalyzeNeverAnalyzedAsync(dataSource, schema, tables, FirstStatistics.MinimumRows, CancellationToken.None));
        }
        finally
        {
            await TestPostgres.ExecuteAsync(dataSource, $"DROP SCHEMA IF EXISTS {schema} CASCADE");
        }
    }

    /// <summary>The inserting sessions report their counts to the statistics system asynchronously (at most every second).</summary>
    private static async Task WaitForCountsAsync(NpgsqlDataSource dataSource, string schema)
    {
        var sql = $"SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = '{schema}' AND n_mod_since_analyze > 0";
        for (var i = 0; i < 150 && await TestPostgres.ScalarAsync(dataSource, sql) < 3; i++)
            await Task.Delay(100);
        Assert.Equal(3L, await TestPostgres.ScalarAsync(dataSource, sql));
    }

    private static async Task<string> PlanAsync(NpgsqlDataSource dataSource, string query)
    {
        await using var cmd = dataSource.CreateCommand("EXPLAIN " + query);
        var lines = new List<string>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            lines.Add(reader.GetString(0));
        return string.Join('\n', lines);
    }
}
