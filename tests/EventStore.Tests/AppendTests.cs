using TaggedMirror.EventStore;

namespace TaggedMirror.EventStore.Tests;

public sealed class AppendTests : PgTestBase
{
    [Fact]
    public async Task append_to_new_stream_reads_back_versions_1_to_n_with_increasing_global_sequence()
    {
        var events = Enumerable.Range(1, 5).Select(i => Json("Written", new { i })).ToList();
        var version = await Store.AppendAsync("vol-1", ExpectedVersion.NoStream, events, Ct);
        Assert.Equal(5, version);

        var more = Enumerable.Range(6, 3).Select(i => Json("Written", new { i })).ToList();
        Assert.Equal(8, await Store.AppendAsync("vol-1", 5, more, Ct));
        Assert.Equal(8, await Store.GetStreamVersionAsync("vol-1", Ct));

        var read = await Store.ReadStreamAsync("vol-1", 1, Ct).ToListAsync(Ct);
        Assert.Equal(Enumerable.Range(1, 8).Select(i => (long)i), read.Select(e => e.Version));
        Assert.Equal(Enumerable.Range(1, 8), read.Select(e => Parse(e.Data).GetProperty("i").GetInt32()));
        Assert.All(read, e => Assert.Equal("Written", e.Type));
        Assert.All(read, e => Assert.Equal("vol-1", e.StreamId));
        for (var i = 1; i < read.Count; i++)
        {
            Assert.True(read[i].Sequence > read[i - 1].Sequence);
        }

        var tail = await Store.ReadStreamAsync("vol-1", 6, Ct).ToListAsync(Ct);
        Assert.Equal([6L, 7L, 8L], tail.Select(e => e.Version));

        var all = await Store.ReadAllAsync(0, 100, Ct).ToListAsync(Ct);
        Assert.Equal(read.Select(e => e.Sequence), all.Select(e => e.Sequence));
        var afterThird = await Store.ReadAllAsync(read[2].Sequence, 2, Ct).ToListAsync(Ct);
        Assert.Equal([read[3].Sequence, read[4].Sequence], afterThird.Select(e => e.Sequence));
    }

    [Fact]
    public async Task sequences_interleave_across_streams_and_stay_increasing()
    {
        for (var round = 0; round < 3; round++)
        {
            await Store.AppendAsync("a", ExpectedVersion.Any, [Json("A", new { round })], Ct);
            await Store.AppendAsync("b", ExpectedVersion.Any, [Json("B", new { round })], Ct);
        }

        var all = await Store.ReadAllAsync(0, 100, Ct).ToListAsync(Ct);
        Assert.Equal(["a", "b", "a", "b", "a", "b"], all.Select(e => e.StreamId));
        Assert.Equal([1L, 1L, 2L, 2L, 3L, 3L], all.Select(e => e.Version));
        Assert.Equal(all.Select(e => e.Sequence).Order(), all.Select(e => e.Sequence));
        Assert.Equal(all.Count, all.Select(e => e.Sequence).Distinct().Count());
    }

    [Fact]
    public async Task append_with_wrong_expected_version_throws_conflict_and_writes_nothing()
    {
        await Store.AppendAsync("s", ExpectedVersion.NoStream, [Json("E", new { n = 1 }), Json("E", new { n = 2 })], Ct);

        var noStream = await Assert.ThrowsAsync<StreamVersionConflictException>(
            () => Store.AppendAsync("s", ExpectedVersion.NoStream, [Json("E", new { n = 3 })], Ct));
        Assert.Equal("s", noStream.StreamId);
        Assert.Equal(ExpectedVersion.NoStream, noStream.ExpectedVersion);
        Assert.Equal(2, noStream.ActualVersion);
        Assert.Contains("'s'", noStream.Message, StringComparison.Ordinal);

        var behind = await Assert.ThrowsAsync<StreamVersionConflictException>(
            () => Store.AppendAsync("s", 1, [Json("E", new { n = 3 }), Json("E", new { n = 4 })], Ct));
        Assert.Equal(1, behind.ExpectedVersion);
        Assert.Equal(2, behind.ActualVersion);

        var ahead = await Assert.ThrowsAsync<StreamVersionConflictException>(
            () => Store.AppendAsync("s", 3, [Json("E", new { n = 3 })], Ct));
        Assert.Equal(2, ahead.ActualVersion);

        var missing = await Assert.ThrowsAsync<StreamVersionConflictException>(
            () => Store.AppendAsync("nope", 4, [Json("E", new { n = 1 })], Ct));
        Assert.Equal(0, missing.ActualVersion);

        Assert.Equal(2, await Store.GetStreamVersionAsync("s", Ct));
        Assert.Equal(0, await Store.GetStreamVersionAsync("nope", Ct));
        Assert.Equal(2, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.events"));
        Assert.Equal(1, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.streams"));

        // The right expected version still works afterwards.
        Assert.Equal(3, await Store.AppendAsync("s", 2, [Json("E", new { n = 3 })], Ct));
    }

    [Fact]
    public async Task append_with_any_creates_and_extends_a_stream()
    {
        Assert.Equal(2, await Store.AppendAsync("any", ExpectedVersion.Any, [Json("E", new { }), Json("E", new { })], Ct));
        Assert.Equal(3, await Store.AppendAsync("any", ExpectedVersion.Any, [Json("E", new { })], Ct));
        var versions = await Store.ReadStreamAsync("any", 0, Ct).Select(e => e.Version).ToListAsync(Ct);
        Assert.Equal([1L, 2L, 3L], versions);
    }

    [Fact]
    public async Task session_append_returns_real_sequences_and_versions()
    {
        await using var session = await Store.OpenSessionAsync(Ct);
        var first = await session.AppendAsync("s", ExpectedVersion.NoStream, [Json("E", new { n = 1 }), Json("E", new { n = 2 })], Ct);
        var second = await session.AppendAsync("s", 2, [Json("F", new { n = 3 })], Ct);
        await session.CommitAsync(Ct);

        var returned = first.Concat(second).ToList();
        Assert.Equal([1L, 2L, 3L], returned.Select(e => e.Version));
        Assert.All(returned, e => Assert.True(e.Sequence > 0));

        var read = await Store.ReadStreamAsync("s", 1, Ct).ToListAsync(Ct);
        Assert.Equal(read.Select(e => (e.Sequence, e.Version, e.Type)), returned.Select(e => (e.Sequence, e.Version, e.Type)));
        Assert.Equal(read.Select(e => e.Timestamp), returned.Select(e => e.Timestamp));
    }

    [Fact]
    public async Task empty_append_writes_nothing_but_checks_the_expected_version()
    {
        Assert.Equal(0, await Store.AppendAsync("e", ExpectedVersion.NoStream, [], Ct));
        await Store.AppendAsync("e", ExpectedVersion.NoStream, [Json("E", new { })], Ct);
        Assert.Equal(1, await Store.AppendAsync("e", 1, [], Ct));
        await Assert.ThrowsAsync<StreamVersionConflictException>(() => Store.AppendAsync("e", 7, [], Ct));
        Assert.Equal(1, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.events"));
    }

    [Fact]
    public async Task migrate_is_idempotent_and_safe_to_run_concurrently()
    {
        await Store.AppendAsync("m", ExpectedVersion.NoStream, [Json("E", new { })], Ct);
        var stores = Enumerable.Range(0, 6).Select(_ => new PgEventStore(DataSource, Schema)).ToList();
        await Task.WhenAll(stores.Select(s => s.MigrateAsync(Ct)));
        Assert.Equal(1, await stores[0].GetStreamVersionAsync("m", Ct));
    }

    [Fact]
    public void schema_must_be_a_plain_lower_case_identifier()
    {
        Assert.Throws<ArgumentException>(() => new PgEventStore(DataSource, "Bad-Schema"));
        Assert.Throws<ArgumentException>(() => new PgEventStore(DataSource, "x; DROP TABLE y"));
        Assert.Throws<ArgumentException>(() => new PgEventStore(DataSource, "1abc"));
    }
}
