using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using TaggedMirror.Controller.Intake;
using TaggedMirror.Controller.Tests.Reconciliation;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Tests.Intake;

/// <summary>
/// The expiry of answered intake request ids against the real PostgreSQL, on the intake's own tables in a schema of
/// their own (dropped after each case): what goes (answered longer ago than the retention, oldest first, in chunks),
/// what stays (pending ids whatever their age, ids answered since), and that an expired id is new again.
/// </summary>
public sealed class IntakeRetentionTests : IAsyncLifetime
{
    private static readonly NpgsqlDataSource DataSource = ScratchReconciliation.DataSource;

    private readonly string _schema = "t_" + Guid.NewGuid().ToString("N");

    private IntakeStore Store => new(new EventStreams(null!, DataSource, _schema));

    public async Task InitializeAsync()
    {
        // 25 ids answered 8 days ago (a1..a25, a1 the oldest), 5 answered an hour ago, 3 pending for 30 days.
        await ExecuteAsync($$"""
            CREATE SCHEMA {{_schema}};
            {{IntakeSchema.Ddl(_schema)}}
            INSERT INTO {{_schema}}.intake_requests (producer_id, request_id, volume, state, outcome, partition, "offset", updated_at)
            SELECT 'p', 'a' || i, 'v', 'answered', '{"ok": true}', 0, i, now() - interval '8 days' + i * interval '1 second'
            FROM generate_series(1, 25) i;
            INSERT INTO {{_schema}}.intake_requests (producer_id, request_id, volume, state, outcome, partition, "offset", updated_at)
            SELECT 'p', 'n' || i, 'v', 'answered', '{"ok": true}', 0, 100 + i, now() - interval '1 hour' FROM generate_series(1, 5) i;
            INSERT INTO {{_schema}}.intake_requests (producer_id, request_id, volume, state, partition, "offset", updated_at)
            SELECT 'p', 'q' || i, 'v', 'pending', 0, 200 + i, now() - interval '30 days' FROM generate_series(1, 3) i;
            """);
    }

    public Task DisposeAsync() => ExecuteAsync($"DROP SCHEMA {_schema} CASCADE");

    private async Task ExecuteAsync(string sql)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        await cmd.ExecuteNonQueryAsync();
    }

    private async Task<List<string>> IdsAsync()
    {
        await using var cmd = DataSource.CreateCommand($"SELECT request_id FROM {_schema}.intake_requests ORDER BY request_id");
        await using var r = await cmd.ExecuteReaderAsync();
        var ids = new List<string>();
        while (await r.ReadAsync()) ids.Add(r.GetString(0));
        return ids;
    }

    private IntakeRetention Retention(TimeSpan retention, int chunkRows, int chunksPerPass) => new(
        Store, new ControllerOptions { IntakeRequestRetention = retention }, new IntakeTelemetry(new TaggedMirrorTelemetry("test")),
        NullLogger<IntakeRetention>.Instance, chunkRows, chunksPerPass);

    [Fact]
    public async Task ids_answered_longer_ago_than_the_retention_go_oldest_first_in_chunks_and_pending_ones_stay()
    {
        var retention = Retention(TimeSpan.FromDays(7), chunkRows: 10, chunksPerPass: 2);

        // A pass of two chunks of ten: the twenty oldest, and it says there is more.
        Assert.Equal((20L, true), await retention.PruneAsync(CancellationToken.None));
        var left = await IdsAsync();
        Assert.Equal(["a21", "a22", "a23", "a24", "a25", "n1", "n2", "n3", "n4", "n5", "q1", "q2", "q3"], left);

        // The next pass ends at the first chunk that is not full.
        Assert.Equal((5L, false), await retention.PruneAsync(CancellationToken.None));
        Assert.Equal((0L, false), await retention.PruneAsync(CancellationToken.None));
        Assert.Equal(["n1", "n2", "n3", "n4", "n5", "q1", "q2", "q3"], await IdsAsync());
    }

    [Fact]
    public async Task with_no_retention_every_answered_id_goes_never_a_pending_one_and_an_expired_id_is_new_again()
    {
        Assert.Equal((30L, false), await Retention(TimeSpan.Zero, chunkRows: 1000, chunksPerPass: 1).PruneAsync(CancellationToken.None));
        Assert.Equal(["q1", "q2", "q3"], await IdsAsync());

        // A request with an expired id is recorded as a new one (pending, written again); a pending id stays as it was.
        var inserted = await Store.InsertPendingAsync([("p", "a1", "v", 0, 500), ("p", "q1", "v", 0, 501)], CancellationToken.None);
        Assert.Equal(["p/a1"], inserted.Order());
        var stored = await Store.LookupAsync([("p", "a1"), ("p", "q1")], CancellationToken.None);
        Assert.False(stored["p/a1"].Answered);
        Assert.Equal(500, stored["p/a1"].Offset);
        Assert.Equal(201, stored["p/q1"].Offset);
    }
}
