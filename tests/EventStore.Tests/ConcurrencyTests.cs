using System.Collections.Concurrent;
using TaggedMirror.EventStore;

namespace TaggedMirror.EventStore.Tests;

public sealed class ConcurrencyTests : PgTestBase
{
    [Fact]
    public async Task many_concurrent_appenders_on_one_stream_get_contiguous_versions_without_duplicates()
    {
        const int tasks = 16;
        const int appendsPerTask = 50;
        var conflicts = 0;
        var acknowledged = new ConcurrentBag<(int Task, int I, long Version)>();

        await Task.WhenAll(Enumerable.Range(0, tasks).Select(t => Task.Run(
            async () =>
            {
                for (var i = 0; i < appendsPerTask; i++)
                {
                    while (true)
                    {
                        var current = await Store.GetStreamVersionAsync("hot", Ct);
                        try
                        {
                            var version = await Store.AppendAsync("hot", current, [Json("Tick", new { t, i })], Ct);
                            acknowledged.Add((t, i, version));
                            break;
                        }
                        catch (StreamVersionConflictException)
                        {
                            Interlocked.Increment(ref conflicts);
                        }
                    }
                }
            },
            Ct)));

        const int total = tasks * appendsPerTask;
        Assert.Equal(total, await Store.GetStreamVersionAsync("hot", Ct));
        var read = await Store.ReadStreamAsync("hot", 1, Ct).ToListAsync(Ct);
        Assert.Equal(Enumerable.Range(1, total).Select(v => (long)v), read.Select(e => e.Version));

        // Every acknowledged append is stored exactly once, at the version it was acknowledged with.
        var stored = read.ToDictionary(e => e.Version, e => (Parse(e.Data).GetProperty("t").GetInt32(), Parse(e.Data).GetProperty("i").GetInt32()));
        Assert.Equal(total, acknowledged.Count);
        Assert.All(acknowledged, a => Assert.Equal((a.Task, a.I), stored[a.Version]));
        Assert.Equal(total, stored.Values.Distinct().Count());
        Assert.Equal(total, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.events"));
        Assert.True(conflicts > 0, "16 writers on one stream should have collided at least once");
    }

    [Fact]
    public async Task concurrent_no_stream_appenders_exactly_one_wins()
    {
        var results = await Task.WhenAll(Enumerable.Range(0, 16).Select(t => Task.Run(
            async () =>
            {
                try
                {
                    await Store.AppendAsync("first", ExpectedVersion.NoStream, [Json("Created", new { t }), Json("Named", new { t })], Ct);
                    return true;
                }
                catch (StreamVersionConflictException ex)
                {
                    Assert.Equal(2, ex.ActualVersion);
                    return false;
                }
            },
            Ct)));

        Assert.Single(results, r => r);
        Assert.Equal(2, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.events"));
    }

    [Fact]
    public async Task concurrent_sessions_with_the_same_expected_version_one_waits_and_then_conflicts()
    {
        await Store.AppendAsync("s", ExpectedVersion.NoStream, [Json("E", new { })], Ct);

        await using var first = await Store.OpenSessionAsync(Ct);
        await first.AppendAsync("s", 1, [Json("E", new { who = 1 })], Ct);

        // The second appender queues on the stream row until the first commits, then sees version 2.
        var second = Task.Run(() => Store.AppendAsync("s", 1, [Json("E", new { who = 2 })], Ct), Ct);
        await Task.Delay(200, Ct);
        Assert.False(second.IsCompleted);
        await first.CommitAsync(Ct);

        var ex = await Assert.ThrowsAsync<StreamVersionConflictException>(() => second);
        Assert.Equal(2, ex.ActualVersion);
        Assert.Equal(2, await Store.GetStreamVersionAsync("s", Ct));
    }
}
