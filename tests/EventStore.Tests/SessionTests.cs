using Npgsql;
using TaggedMirror.EventStore;

namespace TaggedMirror.EventStore.Tests;

public sealed class SessionTests : PgTestBase
{
    private readonly InlineCountProjection _inline = new();

    protected override IEnumerable<IInlineProjection>? InlineProjections => [_inline];

    [Fact]
    public async Task inline_projection_writes_commit_in_the_append_transaction()
    {
        await Store.AppendAsync("a", ExpectedVersion.NoStream, [Json("E", new { }), Json("E", new { })], Ct);
        await Store.AppendAsync("a", 2, [Json("E", new { })], Ct);
        await Store.AppendAsync("b", ExpectedVersion.Any, [Json("E", new { })], Ct);

        var counts = await PairsAsync($"SELECT stream_id, n FROM {Schema}.inline_counts ORDER BY stream_id");
        Assert.Equal([("a", 3L), ("b", 1L)], counts);
    }

    [Fact]
    public async Task failing_inline_projection_rolls_back_the_events_too()
    {
        await Store.AppendAsync("a", ExpectedVersion.NoStream, [Json("E", new { })], Ct);

        await Assert.ThrowsAsync<InvalidOperationException>(
            () => Store.AppendAsync("a", 1, [Json("E", new { }), Json("Boom", new { })], Ct));
        await Assert.ThrowsAsync<InvalidOperationException>(
            () => Store.AppendAsync("new", ExpectedVersion.NoStream, [Json("Boom", new { })], Ct));

        Assert.Equal(1, await Store.GetStreamVersionAsync("a", Ct));
        Assert.Equal(0, await Store.GetStreamVersionAsync("new", Ct));
        Assert.Equal(1, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.events"));
        Assert.Equal([("a", 1L)], await PairsAsync($"SELECT stream_id, n FROM {Schema}.inline_counts"));

        // The stream is still usable at its old version.
        Assert.Equal(2, await Store.AppendAsync("a", 1, [Json("E", new { })], Ct));
    }

    [Fact]
    public async Task session_appending_to_two_streams_with_extra_sql_commits_atomically()
    {
        // Not committed: nothing of it stays.
        await using (var session = await Store.OpenSessionAsync(Ct))
        {
            await session.AppendAsync("left", ExpectedVersion.NoStream, [Json("E", new { }), Json("E", new { })], Ct);
            await session.AppendAsync("right", ExpectedVersion.NoStream, [Json("E", new { })], Ct);
            await InsertSideAsync(session, "abandoned");
        }

        Assert.Equal(0, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.events"));
        Assert.Equal(0, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.streams"));
        Assert.Equal(0, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.side"));
        Assert.Empty(_inline.BatchSizes);

        await using (var session = await Store.OpenSessionAsync(Ct))
        {
            await session.AppendAsync("left", ExpectedVersion.NoStream, [Json("E", new { }), Json("E", new { })], Ct);
            await InsertSideAsync(session, "kept");
            await session.AppendAsync("right", ExpectedVersion.NoStream, [Json("E", new { })], Ct);
            await session.AppendAsync("left", 2, [Json("E", new { })], Ct);

            // Not visible to others before commit.
            Assert.Equal(0, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.events"));
            await session.CommitAsync(Ct);
            await Assert.ThrowsAsync<InvalidOperationException>(() => session.CommitAsync(Ct));
        }

        Assert.Equal(3, await Store.GetStreamVersionAsync("left", Ct));
        Assert.Equal(1, await Store.GetStreamVersionAsync("right", Ct));
        Assert.Equal(1, await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.side WHERE note = 'kept'"));
        Assert.Equal([("left", 3L), ("right", 1L)], await PairsAsync($"SELECT stream_id, n FROM {Schema}.inline_counts ORDER BY stream_id"));

        // The inline projection saw the whole session at once.
        Assert.Equal([4], _inline.BatchSizes);
    }

    [Fact]
    public async Task conflict_inside_a_session_keeps_earlier_appends_committable()
    {
        await Store.AppendAsync("taken", ExpectedVersion.NoStream, [Json("E", new { })], Ct);
        await using var session = await Store.OpenSessionAsync(Ct);
        await session.AppendAsync("mine", ExpectedVersion.NoStream, [Json("E", new { })], Ct);
        await Assert.ThrowsAsync<StreamVersionConflictException>(
            async () => await session.AppendAsync("taken", ExpectedVersion.NoStream, [Json("E", new { })], Ct));
        await session.CommitAsync(Ct);

        Assert.Equal(1, await Store.GetStreamVersionAsync("mine", Ct));
        Assert.Equal(1, await Store.GetStreamVersionAsync("taken", Ct));
    }

    private async Task InsertSideAsync(EventSession session, string note)
    {
        await using var cmd = new NpgsqlCommand($"INSERT INTO {Schema}.side (note) VALUES (@note)", session.Connection, session.Transaction);
        cmd.Parameters.AddWithValue("note", note);
        await cmd.ExecuteNonQueryAsync(Ct);
    }
}
