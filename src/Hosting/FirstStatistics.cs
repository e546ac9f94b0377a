using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace TaggedMirror.Hosting;

/// <summary>
/// Analyzes the given tables of a schema that PostgreSQL has never analyzed, once they hold some rows, instead of
/// leaving it to autovacuum's first round (up to its one-minute naptime after they fill). Without statistics the
/// planner guesses a third of the table for any range, and Marten's high-water query (its gap search over the events
/// past the mark) took a sequential scan and a sort of the whole event table on every poll: 12–98 ms each, growing
/// with the table, on every new deployment's first minute (docs/benchmarks.md, "A fresh stack"). Once a table has
/// statistics, ranges past their histogram are estimated from the index's actual end, and autovacuum keeps them.
/// Looks every <see cref="Period"/>: one catalog query, and an <c>ANALYZE (SKIP_LOCKED)</c> per table that qualifies
/// (a table autovacuum is analyzing or vacuuming is skipped, and autovacuum's run gives it statistics anyway).
/// </summary>
public sealed class FirstStatistics(
    NpgsqlDataSource dataSource, string schema, IReadOnlyList<string> tables, ILogger<FirstStatistics> logger) : BackgroundService
{
    /// <summary>How often the tables are looked at.</summary>
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(5);

    /// <summary>Rows changed since the table's creation before it is analyzed: fewer give statistics of nearly nothing.</summary>
    public const long MinimumRows = 1000;

    /// <summary>
    /// Analyzes every table of <paramref name="tables"/> in <paramref name="schema"/> never analyzed (by anyone) that had
    /// at least <paramref name="minimumRows"/> rows changed. Returns the tables it analyzed.
    /// </summary>
    public static async Task<IReadOnlyList<string>> AnalyzeNeverAnalyzedAsync(
        NpgsqlDataSource dataSource, string schema, IReadOnlyList<string> tables, long minimumRows, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(tables);
        var due = new List<string>();
        var connection = await dataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var find = new NpgsqlCommand("""
                SELECT relname FROM pg_stat_user_tables
                WHERE schemaname = $1 AND relname = ANY($2) AND last_analyze IS NULL AND last_autoanalyze IS NULL
                  AND n_mod_since_analyze >= $3
                ORDER BY relname
                """, connection);
            await using (find.ConfigureAwait(false))
            {
                find.Parameters.AddWithValue(schema);
                find.Parameters.AddWithValue(tables.ToArray());
                find.Parameters.AddWithValue(minimumRows);
                var reader = await find.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(ct).ConfigureAwait(false))
                        due.Add(reader.GetString(0));
                }
            }

            foreach (var table in due)
            {
                // The names come from the catalog, matched against the caller's list; quoted all the same.
                var analyze = new NpgsqlCommand($"ANALYZE (SKIP_LOCKED) \"{schema}\".\"{table}\"", connection);
                await using (analyze.ConfigureAwait(false))
                    await analyze.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
        }
        return due;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Period);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                foreach (var table in await AnalyzeNeverAnalyzedAsync(dataSource, schema, tables, MinimumRows, stoppingToken).ConfigureAwait(false))
                    logger.LogInformation("Analyzed {Schema}.{Table}: PostgreSQL had no statistics for it yet", schema, table);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                // Statistics only speed queries up: a failure here (the database away) is retried at the next tick.
                logger.LogDebug("First statistics: {Reason}", ex.Message);
            }
        }
    }
}
