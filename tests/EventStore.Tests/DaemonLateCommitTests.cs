using Npgsql;
using TaggedMirror.EventStore;

namespace TaggedMirror.EventStore.Tests;

public sealed class DaemonLateCommitTests : PgTestBase
{
    [Fact]
    public async Task daemon_never_skips_late_commits_under_concurrent_appenders()
    {
        var projection = new CountingProjection();
        var log = new CollectingLogger<ProjectionDaemon>();
        var daemon = new ProjectionDaemon(Store, projection, new ProjectionDaemonOptions { PollInterval = TimeSpan.FromMilliseconds(15), BatchSize = 25 }, log);
        using var run = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var running = daemon.RunAsync(run.Token);

        const int writers = 12;
        const int sessionsPerWriter = 25;
        var committedEvents = 0;
        var rolledBack = new System.Collections.Concurrent.ConcurrentBag<(int, int)>();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(
            async () =>
            {
                var random = new Random(w);
                for (var k = 0; k < sessionsPerWriter; k++)
                {
                    var stream = $"s-{w}-{k % 4}";
                    var events = Enumerable.Range(0, random.Next(1, 6)).Select(i => Json("E", new { w, k, i })).ToList();
                    var mode = random.Next(10);
                    if (mode < 2)
                    {
                        await Store.AppendAsync(stream, ExpectedVersion.Any, events, Ct);
                        Interlocked.Add(ref committedEvents, events.Count);
                        continue;
                    }

                    await using var session = await Store.OpenSessionAsync(Ct);
                    if (mode < 6)
                    {
                        // Transaction id first, seq much later: the case that defeats a bare tx_id < xmin filter.
                        await using var side = new NpgsqlCommand($"INSERT INTO {Schema}.side (note) VALUES ('x')", session.Connection, session.Transaction);
                        await side.ExecuteNonQueryAsync(Ct);
                        await Task.Delay(random.Next(0, 30), Ct);
                    }

                    await session.AppendAsync(stream, ExpectedVersion.Any, events, Ct);

                    // Hold the transaction open while others (higher seqs) commit.
                    await using (var sleep = new NpgsqlCommand("SELECT pg_sleep(@s)", session.Connection, session.Transaction))
                    {
                        sleep.Parameters.AddWithValue("s", random.Next(0, 40) / 1000.0);
                        await sleep.ExecuteNonQueryAsync(Ct);
                    }

                    if (mode == 9)
                    {
                        rolledBack.Add((w, k));
                        continue; // rolled back on dispose: its seqs are gaps the daemon must step over
                    }

                    await session.CommitAsync(Ct);
                    Interlocked.Add(ref committedEvents, events.Count);
                }
            },
            Ct)));

        // CatchUpAsync shares the running daemon instance; rounds are serialized.
        var checkpoint = await daemon.CatchUpAsync(Ct);
        await run.CancelAsync();
        await running;

        Assert.True(log.Entries.IsEmpty, string.Join("\n", log.Entries.Take(3)));
        foreach (var (w, k) in rolledBack)
        {
            Assert.Equal(0, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.events WHERE (data->>'w')::int = {w} AND (data->>'k')::int = {k}"));
        }

        Assert.Equal(committedEvents, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.events"));
        Assert.Equal(await ScalarAsync<long>($"SELECT max(seq) FROM {Schema}.events"), checkpoint);
        Assert.Equal(0, await ScalarAsync<long>(
            $"SELECT count(*) FROM {Schema}.events e FULL JOIN {Schema}.seen s USING (seq) WHERE e.seq IS NULL OR s.seq IS NULL OR s.times <> 1"));
        Assert.Equal(
            await PairsAsync($"SELECT stream_id, count(*) FROM {Schema}.events GROUP BY stream_id ORDER BY stream_id"),
            await PairsAsync($"SELECT stream_id, n FROM {Schema}.counts ORDER BY stream_id"));
        Assert.Equal(committedEvents, projection.Applied.Count);
        Assert.Equal(projection.Applied.Order(), projection.Applied);
    }
}
