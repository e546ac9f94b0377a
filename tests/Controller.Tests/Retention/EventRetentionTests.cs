using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using TaggedMirror.Controller.Retention;
using TaggedMirror.Controller.Tests.Reconciliation;

namespace TaggedMirror.Controller.Tests.Retention;

/// <summary>
/// The event store's pruning against the real PostgreSQL, over tables shaped as Marten's in a schema of their own
/// (dropped after each case), with chunks and passes small enough that a case crosses many of them: what goes (the
/// tag tables' traffic, old enough, at or below both reconciliation's progress and the high-water mark), what stays
/// (every other kind and stream, a pending intake request's copy), and where a pass stops. <c>TM_PG</c> overrides the
/// connection string.
/// </summary>
public sealed class EventRetentionTests : IAsyncLifetime
{
    private static readonly NpgsqlDataSource DataSource = ScratchReconciliation.DataSource;

    private static readonly Meter Meter = new("TaggedMirror.Controller.Tests.EventRetention");

    private readonly string _schema = "t_" + Guid.NewGuid().ToString("N");

    public async Task InitializeAsync()
    {
        // 25,000 events two days old: every tenth a volume's, every tenth (offset five) an object deletion on a device
        // (kept kinds), the rest the four kinds of tag-table traffic over two devices. Event 101 is the copy of a
        // pending intake request, 103 of an answered one.
        await ExecuteAsync($$"""
            CREATE SCHEMA {{_schema}};
            CREATE TABLE {{_schema}}.mt_events (seq_id bigint PRIMARY KEY, stream_id varchar, type varchar(500) NOT NULL,
                data jsonb NOT NULL, "timestamp" timestamptz NOT NULL);
            CREATE TABLE {{_schema}}.mt_event_progression (name varchar PRIMARY KEY, last_seq_id bigint);
            CREATE TABLE {{_schema}}.intake_requests (producer_id text, request_id text, state text, PRIMARY KEY (producer_id, request_id));
            INSERT INTO {{_schema}}.mt_events
            SELECT s,
                   CASE WHEN s % 10 = 0 THEN 'volume-v' ELSE 'tagtable-d' || (s % 2) END,
                   CASE WHEN s % 10 = 0 THEN 'extension_reserved' WHEN s % 10 = 5 THEN 'object_deleted'
                        ELSE (ARRAY['tag_recorded', 'tag_retired', 'barrier_passed', 'fence_passed'])[s % 4 + 1] END,
                   CASE s WHEN 101 THEN '{"requestId": "p/pending"}' WHEN 103 THEN '{"requestId": "p/answered"}' ELSE '{"requestId": null}' END::jsonb,
                   now() - interval '2 days'
            FROM generate_series(1, 25000) s;
            UPDATE {{_schema}}.mt_events SET type = 'tag_recorded' WHERE seq_id IN (101, 103);
            INSERT INTO {{_schema}}.intake_requests VALUES ('p', 'pending', 'pending'), ('p', 'answered', 'answered');
            {{EventRetention.Ddl(_schema)}}
            """);
    }

    public async Task DisposeAsync() => await ExecuteAsync($"DROP SCHEMA {_schema} CASCADE");

    [Fact]
    public async Task passes_prune_chunk_by_chunk_up_to_the_older_of_reconciliations_progress_and_the_high_water_mark_and_keep_everything_else()
    {
        await ProgressAsync(reconciliation: 20_000, highWater: 22_000);
        var retention = Retention(TimeSpan.FromDays(1));

        var passes = new List<(long Events, long Through, bool More)>();
        do passes.Add(await retention.PruneAsync(CancellationToken.None));
        while (passes[^1].More && passes.Count < 10);

        // Chunks of 1,000 sequence numbers, three a pass: 20,000 is reached in the seventh pass, which stops there.
        Assert.Equal([3_000L, 6_000, 9_000, 12_000, 15_000, 18_000, 20_000], passes.Select(p => p.Through));
        Assert.Equal([true, true, true, true, true, true, false], passes.Select(p => p.More));
        Assert.Equal(0, await CountAsync($"{Traffic} AND seq_id <= 20000 AND seq_id <> 101"));
        Assert.Equal(1, await CountAsync("seq_id = 101"));
        Assert.Equal(0, await CountAsync("seq_id = 103"));
        Assert.Equal(TrafficIn(20_001, 25_000), await CountAsync($"{Traffic} AND seq_id > 20000"));
        Assert.Equal(25_000 / 10, await CountAsync("type = 'extension_reserved'"));
        Assert.Equal(25_000 / 10, await CountAsync("type = 'object_deleted'"));
        var pruned = TrafficIn(1, 20_000) - 1;   // all but the pending request's copy
        Assert.Equal(pruned, passes.Sum(p => p.Events));
        Assert.Equal(pruned, await ScalarAsync($"SELECT events_pruned FROM {_schema}.event_retention"));

        // Reconciliation moves on: the next pass goes on from where the last one stopped, up to the high-water mark.
        await ProgressAsync(reconciliation: 24_000, highWater: 22_000);
        Assert.Equal((TrafficIn(20_001, 22_000), 22_000L, false), await retention.PruneAsync(CancellationToken.None));
        Assert.Equal((0L, 22_000L, false), await retention.PruneAsync(CancellationToken.None));
    }

    [Fact]
    public async Task a_pass_stops_before_the_first_event_younger_than_the_retention()
    {
        await ProgressAsync(reconciliation: 25_000, highWater: 25_000);
        await ExecuteAsync($"UPDATE {_schema}.mt_events SET \"timestamp\" = now() - interval '1 hour' WHERE seq_id > 12345");

        var (events, through, more) = await Retention(TimeSpan.FromDays(1), chunksPerPass: 100).PruneAsync(CancellationToken.None);

        Assert.Equal((12_345L, false), (through, more));
        Assert.Equal(0, await CountAsync($"{Traffic} AND seq_id <= 12345 AND seq_id <> 101"));
        Assert.Equal(TrafficIn(12_346, 25_000), await CountAsync($"{Traffic} AND seq_id > 12345"));
        Assert.Equal(await ScalarAsync($"SELECT events_pruned FROM {_schema}.event_retention"), events);
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(false, false)]
    public async Task nothing_is_pruned_while_reconciliation_or_the_high_water_mark_has_no_position(bool reconciliation, bool highWater)
    {
        if (reconciliation) await ExecuteAsync($"INSERT INTO {_schema}.mt_event_progression VALUES ('reconciliation:All', 25000)");
        if (highWater) await ExecuteAsync($"INSERT INTO {_schema}.mt_event_progression VALUES ('HighWaterMark', 25000)");

        Assert.Equal((0L, 0L, false), await Retention(TimeSpan.Zero).PruneAsync(CancellationToken.None));
        Assert.Equal(25_000, await CountAsync("true"));
    }

    /// <summary>How many of the sequence numbers from <paramref name="first"/> to <paramref name="last"/> the setup made tag-table traffic.</summary>
    private static long TrafficIn(long first, long last) => Enumerable.Range((int)first, (int)(last - first + 1)).Count(s => s % 5 != 0);

    private const string Traffic = "stream_id LIKE 'tagtable-%' AND type IN ('tag_recorded', 'tag_retired', 'barrier_passed', 'fence_passed')";

    private EventRetention Retention(TimeSpan keep, int chunksPerPass = 3) => new(
        DataSource, _schema, new ControllerOptions { EventRetention = keep }, Meter.CreateCounter<long>("pruned"),
        NullLogger<EventRetention>.Instance, chunkEvents: 1_000, chunksPerPass: chunksPerPass);

    private Task ProgressAsync(long reconciliation, long highWater) => ExecuteAsync($"""
        INSERT INTO {_schema}.mt_event_progression VALUES ('reconciliation:All', {reconciliation}), ('HighWaterMark', {highWater})
        ON CONFLICT (name) DO UPDATE SET last_seq_id = excluded.last_seq_id
        """);

    private Task<long> CountAsync(string where) => ScalarAsync($"SELECT count(*) FROM {_schema}.mt_events WHERE {where}");

    private static async Task<long> ScalarAsync(string sql)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task ExecuteAsync(string sql)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        await cmd.ExecuteNonQueryAsync();
    }
}
