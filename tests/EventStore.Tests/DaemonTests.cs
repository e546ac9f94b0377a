using Npgsql;
using TaggedMirror.EventStore;

namespace TaggedMirror.EventStore.Tests;

public sealed class DaemonTests : PgTestBase
{
    private static readonly ProjectionDaemonOptions FastPolling = new() { PollInterval = TimeSpan.FromMilliseconds(20), BatchSize = 4 };

    [Fact]
    public async Task daemon_catches_up_and_a_restarted_daemon_resumes_without_reprocessing()
    {
        await AppendManyAsync("a", 5);
        await AppendManyAsync("b", 3);
        await AppendManyAsync("c", 1);

        var first = new CountingProjection();
        var daemon = new ProjectionDaemon(Store, first, FastPolling);
        var checkpoint = await daemon.CatchUpAsync(Ct);

        var maxSeq = await ScalarAsync<long>($"SELECT max(seq) FROM {Schema}.events");
        Assert.Equal(maxSeq, checkpoint);
        Assert.Equal(maxSeq, await ScalarAsync<long>($"SELECT last_seq FROM {Schema}.projection_checkpoints WHERE name = 'counting'"));
        Assert.Equal([("a", 5L), ("b", 3L), ("c", 1L)], await CountsAsync());
        Assert.Equal(9, first.Applied.Count);

        // A new daemon (a restarted process) starts from the stored checkpoint.
        var second = new CountingProjection();
        var restarted = new ProjectionDaemon(Store, second, FastPolling);
        Assert.Equal(maxSeq, await restarted.CatchUpAsync(Ct));
        Assert.Empty(second.Applied);

        await AppendManyAsync("a", 2);
        await AppendManyAsync("d", 2);
        await restarted.CatchUpAsync(Ct);
        Assert.Equal(4, second.Applied.Count);
        Assert.Equal([("a", 7L), ("b", 3L), ("c", 1L), ("d", 2L)], await CountsAsync());
        Assert.Equal(0, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.seen WHERE times <> 1"));
        Assert.Equal(13, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.seen"));
    }

    [Fact]
    public async Task daemon_rebuild_replays_from_the_first_event()
    {
        await AppendManyAsync("a", 6);
        await AppendManyAsync("b", 4);
        var projection = new CountingProjection();
        var daemon = new ProjectionDaemon(Store, projection, FastPolling);
        await daemon.CatchUpAsync(Ct);
        Assert.Equal([("a", 6L), ("b", 4L)], await CountsAsync());

        await daemon.RebuildAsync(Ct);

        var firstSeq = await ScalarAsync<long>($"SELECT min(seq) FROM {Schema}.events");
        Assert.Equal(firstSeq, projection.Applied.First());
        Assert.Equal(10, projection.Applied.Count);
        Assert.Equal([("a", 6L), ("b", 4L)], await CountsAsync());
        Assert.Equal(0, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.seen WHERE times <> 1"));
    }

    [Fact]
    public async Task daemon_does_not_pass_an_open_transaction_that_holds_a_lower_sequence()
    {
        // "early" gets its transaction id first (a side write), "late" draws the lower seq and stays open, then
        // "early" appends a higher seq and commits. A reader filtering on tx_id < xmin alone would take the higher
        // seq now, checkpoint it, and never see the lower one.
        await using var early = await Store.OpenSessionAsync(Ct);
        await using (var cmd = new NpgsqlCommand($"INSERT INTO {Schema}.side (note) VALUES ('early')", early.Connection, early.Transaction))
        {
            await cmd.ExecuteNonQueryAsync(Ct);
        }

        await using var late = await Store.OpenSessionAsync(Ct);
        var low = (await late.AppendAsync("low", ExpectedVersion.NoStream, [Json("E", new { })], Ct))[0].Sequence;
        var high = (await early.AppendAsync("high", ExpectedVersion.NoStream, [Json("E", new { })], Ct))[0].Sequence;
        Assert.True(low < high);
        await early.CommitAsync(Ct);

        var projection = new CountingProjection();
        var daemon = new ProjectionDaemon(Store, projection, FastPolling);
        using (var run = CancellationTokenSource.CreateLinkedTokenSource(Ct))
        {
            run.CancelAfter(TimeSpan.FromMilliseconds(400));
            await daemon.RunAsync(run.Token);
        }

        Assert.Empty(projection.Applied);

        await late.CommitAsync(Ct);
        Assert.Equal(high, await daemon.CatchUpAsync(Ct));
        Assert.Equal([low, high], projection.Applied);
    }

    [Fact]
    public async Task run_async_follows_new_events_and_stops_cleanly_on_cancellation()
    {
        var projection = new CountingProjection();
        var log = new CollectingLogger<ProjectionDaemon>();
        var daemon = new ProjectionDaemon(Store, projection, FastPolling, log);
        using var run = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var running = daemon.RunAsync(run.Token);

        await AppendManyAsync("live", 10);
        await WaitForCheckpointAsync("counting");

        await run.CancelAsync();
        await running;
        Assert.Equal([("live", 10L)], await CountsAsync());
        Assert.Empty(log.Entries);
    }

    [Fact]
    public async Task run_async_survives_a_failing_projection_and_resumes_when_it_recovers()
    {
        await AppendManyAsync("x", 3);
        var projection = new FlakyProjection(failures: 3);
        var daemon = new ProjectionDaemon(
            Store,
            projection,
            new ProjectionDaemonOptions { PollInterval = TimeSpan.FromMilliseconds(20), MinRetryDelay = TimeSpan.FromMilliseconds(10), MaxRetryDelay = TimeSpan.FromMilliseconds(40) });
        using var run = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var running = daemon.RunAsync(run.Token);

        await WaitForCheckpointAsync("flaky");

        await run.CancelAsync();
        await running;
        Assert.Equal(3, projection.Applied.Count);
        Assert.Equal(3, projection.Attempts);
    }

    private async Task AppendManyAsync(string stream, int count)
    {
        var events = Enumerable.Range(0, count).Select(i => Json("E", new { i })).ToList();
        await Store.AppendAsync(stream, ExpectedVersion.Any, events, Ct);
    }

    /// <summary>Waits (bounded) until the committed checkpoint reaches the last event.</summary>
    private async Task WaitForCheckpointAsync(string name)
    {
        var target = await ScalarAsync<long>($"SELECT max(seq) FROM {Schema}.events");
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (await ScalarAsync<long>($"SELECT coalesce(max(last_seq), 0) FROM {Schema}.projection_checkpoints WHERE name = '{name}'") < target
            && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20, Ct);
        }
    }

    private Task<List<(string, long)>> CountsAsync() => PairsAsync($"SELECT stream_id, n FROM {Schema}.counts ORDER BY stream_id");

    private sealed class FlakyProjection(int failures) : IAsyncProjection
    {
        private int _failuresLeft = failures;

        public string Name => "flaky";

        public int Attempts { get; private set; }

        public List<long> Applied { get; } = [];

        public Task MigrateAsync(NpgsqlConnection c, string schema, CancellationToken ct) => Task.CompletedTask;

        public ValueTask ApplyAsync(NpgsqlConnection c, NpgsqlTransaction t, IReadOnlyList<StoredEvent> events, CancellationToken ct)
        {
            if (_failuresLeft-- > 0)
            {
                Attempts++;
                throw new InvalidOperationException("Projection failed on purpose.");
            }

            Applied.AddRange(events.Select(e => e.Sequence));
            return ValueTask.CompletedTask;
        }
    }
}
