using JasperFx.Events;
using JasperFx.Events.Projections;
using Marten;
using Marten.Events.Projections;
using Npgsql;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Hosting.Tests.Events;

/// <summary>Appends with expected versions, and one transaction shared by events, inline projections and the caller's SQL.</summary>
public sealed class EventTransactionTests : PgTestBase
{
    protected override void Configure(StoreOptions o) =>
        o.Projections.Add(new SideProjection(Schema), ProjectionLifecycle.Inline);

    [Fact]
    public async Task versions_follow_the_appends_and_a_stale_expected_version_writes_nothing()
    {
        Assert.Equal(2, await Streams.AppendAsync("s", ExpectedVersion.NoStream, [new Noted(0, 0, 0), new Noted(0, 0, 1)], Ct));
        Assert.Equal(3, await Streams.AppendAsync("s", 2, [new Noted(0, 1, 0)], Ct));
        Assert.Equal(4, await Streams.AppendAsync("s", ExpectedVersion.Any, [new Noted(0, 2, 0)], Ct));

        var stale = await Assert.ThrowsAsync<StreamVersionConflictException>(() => Streams.AppendAsync("s", 3, [new Noted(9, 9, 9)], Ct));
        Assert.Equal("s", stale.StreamId);
        var exists = await Assert.ThrowsAsync<StreamVersionConflictException>(() => Streams.AppendAsync("s", ExpectedVersion.NoStream, [new Noted(9, 9, 9)], Ct));
        Assert.Equal("s", exists.StreamId);

        Assert.Equal(4, await Streams.GetStreamVersionAsync("s", Ct));
        var events = await Streams.ReadStreamAsync("s", Ct);
        Assert.Equal([1L, 2, 3, 4], events.Select(e => e.Version));
        Assert.DoesNotContain(events, e => e.Data is Noted { Writer: 9 });
        Assert.Equal(0, await Streams.GetStreamVersionAsync("never", Ct));
        Assert.Empty(await Streams.ReadStreamAsync("never", Ct));
    }

    [Fact]
    public async Task events_projections_and_the_callers_sql_commit_together_or_not_at_all()
    {
        await using (var tx = await Streams.BeginAsync(Ct))
        {
            tx.Append("a", ExpectedVersion.NoStream, [new Noted(1, 0, 0)]);
            await SideAsync(tx, "caller 1");
            await tx.CommitAsync(Ct);
        }

        await using (var tx = await Streams.BeginAsync(Ct))
        {
            tx.Append("a", 1, [new Noted(2, 0, 0)]);
            await SideAsync(tx, "caller 2");
            await tx.FlushAsync(Ct);
            // Disposed without commit: rolled back, events and projection rows included.
        }

        await using (var tx = await Streams.BeginAsync(Ct))
        {
            await SideAsync(tx, "caller 3");
            tx.Append("a", 5, [new Noted(3, 0, 0)]);
            await Assert.ThrowsAsync<StreamVersionConflictException>(() => tx.CommitAsync(Ct));
        }

        Assert.Equal(1, await ScalarAsync($"SELECT count(*) FROM {Schema}.mt_events"));
        Assert.Equal(
            [("caller 1", 1L), ("projected 1", 1L)],
            await PairsAsync($"SELECT note, count(*) FROM {Schema}.side GROUP BY note ORDER BY note"));
    }

    [Theory]
    [InlineData(-2L)]
    [InlineData(long.MinValue)]
    public async Task an_expected_version_below_any_is_refused_before_anything_is_sent(long expected)
    {
        await using var tx = await Streams.BeginAsync(Ct);
        Assert.Throws<ArgumentOutOfRangeException>(() => tx.Append("s", expected, [new Noted(0, 0, 0)]));
        Assert.Throws<ArgumentException>(() => tx.Append("s", ExpectedVersion.Any, []));
        Assert.Throws<ArgumentException>(() => tx.Append("", ExpectedVersion.Any, [new Noted(0, 0, 0)]));
    }

    private async Task SideAsync(EventTransaction tx, string note)
    {
        await using var cmd = new NpgsqlCommand($"INSERT INTO {Schema}.side (note) VALUES (@n)", tx.Connection, tx.Transaction);
        cmd.Parameters.AddWithValue("n", note);
        await cmd.ExecuteNonQueryAsync(Ct);
    }

    private sealed class SideProjection(string schema) : IProjection
    {
        public Task ApplyAsync(IDocumentOperations operations, IReadOnlyList<IEvent> events, CancellationToken cancellation)
        {
            foreach (var e in events)
            {
                if (e.Data is Noted n) operations.QueueSqlCommand('^', $"INSERT INTO {schema}.side (note) VALUES (^)", "projected " + n.Writer);
            }

            return Task.CompletedTask;
        }
    }
}
