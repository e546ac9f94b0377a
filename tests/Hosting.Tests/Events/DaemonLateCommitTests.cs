using JasperFx.Events.Daemon;
using JasperFx.Events.Projections;
using Marten;
using Npgsql;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Hosting.Tests.Events;

/// <summary>
/// The reconciliation projection must see every committed tag-table event exactly once: a skipped event is a missed
/// repair. These run Marten's async daemon, configured as the product configures it, against appenders that commit
/// out of sequence order, hold transactions open, and roll back.
/// </summary>
public sealed class DaemonLateCommitTests : PgTestBase
{
    private readonly CollectingLogger _log = new();
    private CountingProjection? _projection;

    private CountingProjection Projection => _projection!;

    protected override void Configure(StoreOptions o)
    {
        _projection = new CountingProjection(Schema);
        o.Projections.Add(_projection, ProjectionLifecycle.Async, "counting");
    }

    [Fact]
    public async Task daemon_never_skips_late_commits_under_concurrent_appenders()
    {
        using var daemon = await Store.BuildProjectionDaemonAsync(logger: _log);
        await daemon.StartAllAsync();

        const int writers = 12;
        const int sessionsPerWriter = 25;
        var committedEvents = 0;
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(
            async () =>
            {
                var random = new Random(w);
                for (var k = 0; k < sessionsPerWriter; k++)
                {
                    var stream = $"s-{w}-{k % 4}";
                    var events = Enumerable.Range(0, random.Next(1, 6)).Select(i => (object)new Noted(w, k, i)).ToList();
                    var mode = random.Next(10);
                    if (mode < 2)
                    {
                        await Streams.AppendAsync(stream, ExpectedVersion.Any, events, Ct);
                        Interlocked.Add(ref committedEvents, events.Count);
                        continue;
                    }

                    await using var tx = await Streams.BeginAsync(Ct);
                    if (mode < 6)
                    {
                        // Transaction id first, sequence much later: the case that defeats a bare xid < xmin filter.
                        await using var side = new NpgsqlCommand($"INSERT INTO {Schema}.side (note) VALUES ('x')", tx.Connection, tx.Transaction);
                        await side.ExecuteNonQueryAsync(Ct);
                        await Task.Delay(random.Next(0, 30), Ct);
                    }

                    tx.Append(stream, ExpectedVersion.Any, events);
                    if (mode == 9)
                    {
                        continue; // rolled back on dispose, events never sent: nothing to see
                    }

                    // Sends the events (drawing their sequences) without committing yet, then holds the transaction
                    // open while others (higher sequences) commit.
                    await tx.FlushAsync(Ct);
                    await using (var sleep = new NpgsqlCommand("SELECT pg_sleep(@s)", tx.Connection, tx.Transaction))
                    {
                        sleep.Parameters.AddWithValue("s", random.Next(0, 40) / 1000.0);
                        await sleep.ExecuteNonQueryAsync(Ct);
                    }

                    if (mode == 8)
                    {
                        continue; // sequences drawn and rolled back: gaps the daemon must step over
                    }

                    await tx.CommitAsync(Ct);
                    Interlocked.Add(ref committedEvents, events.Count);
                }
            },
            Ct)));

        await AssertEverythingSeenOnceAsync(committedEvents, TimeSpan.FromSeconds(60));
        await daemon.StopAllAsync();
    }

    [Fact]
    public async Task a_transaction_held_open_past_the_stale_sequence_threshold_is_not_skipped()
    {
        using var daemon = await Store.BuildProjectionDaemonAsync(logger: _log);
        await daemon.StartAllAsync();

        // The slow one draws its sequence first and commits last, well after Marten's stale-gap threshold
        // (3 s): the daemon may only wait for it, never step over it.
        await using var slow = await Streams.BeginAsync(Ct);
        slow.Append("slow", ExpectedVersion.Any, [new Noted(0, 0, 0)]);
        await slow.FlushAsync(Ct);
        var fast = 0;
        for (var i = 0; i < 20; i++)
        {
            await Streams.AppendAsync("fast", ExpectedVersion.Any, [new Noted(1, i, 0)], Ct);
            fast++;
        }

        await Task.Delay(Store.Options.Projections.StaleSequenceThreshold * 2 + TimeSpan.FromSeconds(1), Ct);
        Assert.Equal(0, await ScalarAsync($"SELECT count(*) FROM {Schema}.seen"));
        await slow.CommitAsync(Ct);

        await AssertEverythingSeenOnceAsync(fast + 1, TimeSpan.FromSeconds(30));
    }

    private async Task AssertEverythingSeenOnceAsync(int committedEvents, TimeSpan timeout)
    {
        Assert.Equal(committedEvents, await ScalarAsync($"SELECT count(*) FROM {Schema}.mt_events"));
        await EventuallyAsync(
            async () => await ScalarAsync($"SELECT coalesce(sum(times), 0) FROM {Schema}.seen") >= committedEvents,
            timeout,
            async () => $"the projection to see every committed event; seen {await ScalarAsync($"SELECT coalesce(sum(times), 0) FROM {Schema}.seen")} of {committedEvents}, "
                + $"progression {string.Join(", ", await PairsAsync($"SELECT name, last_seq_id FROM {Schema}.mt_event_progression ORDER BY name"))}, "
                + $"max sequence {await ScalarAsync($"SELECT max(seq_id) FROM {Schema}.mt_events")}; daemon log: {string.Join("\n", _log.Entries.Take(5))}");

        // Give a skipped or repeated event time to show, then compare exactly.
        await Task.Delay(500, Ct);
        Assert.Equal(0, await ScalarAsync(
            $"SELECT count(*) FROM {Schema}.mt_events e FULL JOIN {Schema}.seen s ON s.seq = e.seq_id WHERE e.seq_id IS NULL OR s.seq IS NULL OR s.times <> 1"));
        Assert.Equal(
            await PairsAsync($"SELECT stream_id, count(*) FROM {Schema}.mt_events GROUP BY stream_id ORDER BY stream_id"),
            await PairsAsync($"SELECT stream_id, n FROM {Schema}.counts ORDER BY stream_id"));
        Assert.False(Projection.OutOfOrder, "a page came out of sequence order");
        Assert.Equal(Projection.Applied.Order(), Projection.Applied);
    }
}
