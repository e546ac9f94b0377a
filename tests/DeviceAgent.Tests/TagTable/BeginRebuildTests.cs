using JasperFx.Events.Projections;
using Marten;
using Npgsql;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.TagTable;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.DeviceAgent.BlockStore;
using TaggedMirror.DeviceAgent.Consumption;
using TaggedMirror.DeviceAgent.TagTable;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.DeviceAgent.Tests.TagTable;

/// <summary>
/// <see cref="DeviceRepository.BeginRebuildAsync"/> changes the agent's state in memory as it changes the tables, so
/// the replay starts without reading the state back: against the real PostgreSQL (<c>TM_PG</c> overrides the
/// connection string), the state it leaves must be the one <see cref="DeviceRepository.LoadAsync"/> reads.
/// </summary>
public sealed class BeginRebuildTests : IAsyncLifetime
{
    private static readonly string ConnectionString =
        Environment.GetEnvironmentVariable("TM_PG") ?? "Host=127.0.0.1;Username=tm;Password=tm;Database=tm";

    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(90));
    private readonly string _schema = "t_" + Guid.NewGuid().ToString("N");
    private NpgsqlDataSource? _dataSource;
    private DocumentStore? _store;

    private CancellationToken Ct => _timeout.Token;

    public async Task InitializeAsync()
    {
        _dataSource = NpgsqlDataSource.Create(ConnectionString);
        await DeviceSchema.MigrateAsync(_dataSource, _schema, Ct);
        await EventStoreSetup.MigrateAsync(_dataSource, _schema, Ct);
        var o = new StoreOptions();
        EventStoreSetup.Configure(o, _dataSource, _schema);
        o.Projections.Add(new LiveTagTableProjection(_schema), ProjectionLifecycle.Inline);
        _store = new DocumentStore(o);
    }

    public async Task DisposeAsync()
    {
        _store?.Dispose();
        if (_dataSource is not null)
        {
            await using (var cmd = _dataSource.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE"))
                await cmd.ExecuteNonQueryAsync(CancellationToken.None);
            await _dataSource.DisposeAsync();
        }
        _timeout.Dispose();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task the_state_a_rebuild_begins_with_is_the_one_postgresql_holds_after_it(bool logTruncated)
    {
        var repository = new DeviceRepository(new EventStreams(_store!, _dataSource!, _schema), "d9");
        await RecordSomeHistoryAsync(repository);
        var state = await repository.LoadAsync(Ct);
        Assert.Equal(3, state.Live.Count); // the history left something for the rebuild to keep
        Assert.NotEmpty(state.OwnerEpochs);

        var logStart = new Dictionary<int, long> { [0] = 0, [1] = logTruncated ? 4 : 0 };
        var rebuild = new RebuildState("r1", logStart, new Dictionary<int, long>(state.NextOffsets), DateTimeOffset.UtcNow);
        await repository.BeginRebuildAsync(state, rebuild, Ct);
        var loaded = await repository.LoadAsync(Ct);

        Assert.Equal(loaded.StreamVersion, state.StreamVersion);
        Assert.Equal(Describe(loaded.Objects.Values), Describe(state.Objects.Values));
        Assert.All(state.Objects.Values, o => Assert.Equal(logTruncated, o.NeedsFullCopy));
        Assert.Equal(loaded.NextOffsets.OrderBy(kv => kv.Key), state.NextOffsets.OrderBy(kv => kv.Key));
        Assert.Equal(loaded.OwnerEpochs.OrderBy(kv => kv.Key), state.OwnerEpochs.OrderBy(kv => kv.Key));
        Assert.Equal(loaded.Live.OrderBy(kv => kv.Key), state.Live.OrderBy(kv => kv.Key));
        Assert.NotNull(state.Rebuild);
        Assert.NotNull(loaded.Rebuild);
        Assert.Equal(
            (loaded.Rebuild.Id, loaded.Rebuild.Wiped, loaded.Rebuild.Transactions, loaded.Rebuild.Completed, loaded.Rebuild.LogTruncated),
            (state.Rebuild.Id, state.Rebuild.Wiped, state.Rebuild.Transactions, state.Rebuild.Completed, state.Rebuild.LogTruncated));
        Assert.Equal(loaded.Rebuild.LogStart.OrderBy(kv => kv.Key), state.Rebuild.LogStart.OrderBy(kv => kv.Key));
        Assert.Equal(loaded.Rebuild.ReplayUntil.OrderBy(kv => kv.Key), state.Rebuild.ReplayUntil.OrderBy(kv => kv.Key));
        // PostgreSQL keeps microseconds.
        Assert.True((loaded.Rebuild.StartedAt - state.Rebuild.StartedAt).Duration() < TimeSpan.FromMilliseconds(1));
    }

    /// <summary>
    /// The deletion of the object files is recorded by the first batch the replay commits, with its offsets: until then
    /// PostgreSQL says "not wiped", so an agent that crashed (or whose commit failed) deletes the files again before it
    /// replays from the same offsets; once it is recorded, a restart must not delete what the replay wrote.
    /// </summary>
    [Fact]
    public async Task a_rebuilds_deletion_is_recorded_with_the_first_batch_it_replays_and_not_before()
    {
        var repository = new DeviceRepository(new EventStreams(_store!, _dataSource!, _schema), "d9");
        await RecordSomeHistoryAsync(repository);
        var state = await repository.LoadAsync(Ct);
        var rebuild = new RebuildState("r2", new Dictionary<int, long> { [0] = 0, [1] = 0 }, new Dictionary<int, long>(state.NextOffsets), DateTimeOffset.UtcNow);
        await repository.BeginRebuildAsync(state, rebuild, Ct);
        rebuild.Wiped = true; // the files are gone (DeviceConsumer.ContinueRebuildAsync); nothing recorded yet

        Assert.False((await repository.LoadAsync(Ct)).Rebuild!.Wiped);
        // A commit that is not the replay's (a truncation found before the first fetch) does not record it either.
        await repository.CommitBatchAsync(state.StreamVersion, [], [], [], new Dictionary<int, long> { [1] = 0 }, new Dictionary<(string, int), long>(), Ct);
        Assert.False((await repository.LoadAsync(Ct)).Rebuild!.Wiped);

        var a = state.Objects["va.d9"];
        rebuild.Transactions = 1;
        rebuild.Bytes = 4096;
        await repository.CommitBatchAsync(
            state.StreamVersion, [], [], [new StorageObject(a.Id, 4096, 16, 0, needsFullCopy: false)], new Dictionary<int, long> { [0] = 1 },
            new Dictionary<(string, int), long> { [(a.Id, 0)] = 1 }, Ct, rebuild,
            [new BlockWriteRow(a.Id, 1, 1, new Tag(1, 1, 1), TransactionKind.Write, 1, null, 0, 0)]);
        var loaded = await repository.LoadAsync(Ct);
        Assert.True(loaded.Rebuild!.Wiped);
        Assert.Equal((1L, 4096L, false), (loaded.Rebuild.Transactions, loaded.Rebuild.Bytes, loaded.Rebuild.Completed));
        Assert.Equal(1, loaded.NextOffsets[0]);
    }

    /// <summary>Two objects written in two partitions by two owners, one write retired by a token.</summary>
    private async Task RecordSomeHistoryAsync(DeviceRepository repository)
    {
        var a = new StorageObject("va.d9", 4096, 16, 0, needsFullCopy: false);
        var b = new StorageObject("vb.d9", 512, 8, 2, needsFullCopy: false);
        var events = new List<object>();
        var rows = new List<BlockWriteRow>();
        void Write(string objectId, int partition, long offset, long seq, long ownerEpoch)
        {
            var tag = new Tag(1, 1, seq);
            events.Add(new TagRecorded(tag, TransactionKind.Write, objectId, seq % 4, 1, false, partition, offset, events.Count + 1,
                null, ownerEpoch, null, null));
            rows.Add(new BlockWriteRow(objectId, seq % 4, 1, tag, TransactionKind.Write, ownerEpoch, null, partition, offset));
        }
        Write(a.Id, 0, 0, 1, 1);
        Write(a.Id, 0, 1, 2, 1);
        Write(b.Id, 1, 0, 3, 2);
        Write(b.Id, 1, 1, 4, 2);
        events.Add(new TagRetired(new Tag(1, 1, 1), 1, "token"));
        await repository.CommitBatchAsync(
            0, events, [], [a, b], new Dictionary<int, long> { [0] = 2, [1] = 6 },
            new Dictionary<(string, int), long> { [(a.Id, 0)] = 1, [(b.Id, 1)] = 2 }, Ct, blockWrites: rows);
    }

    private static string[] Describe(IEnumerable<StorageObject> objects) =>
        [.. objects.OrderBy(o => o.Id, StringComparer.Ordinal).Select(o => $"{o.Id} {o.Geometry} full copy {o.NeedsFullCopy}")];
}
