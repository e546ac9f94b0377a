using System.Text;
using Confluent.Kafka;
using JasperFx.Events.Projections;
using Marten;
using Npgsql;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Bus;
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

    /// <summary>
    /// A rebuild keeps the device's block-writer table and its replay records no rows: replaying the same transactions
    /// in the same order would write the same rows again. Here through overwrites (rows covered whole go, rows covered
    /// in part stay) and a delete of the object with writes after it, whose rows a replayed delete must not take away.
    /// </summary>
    [Fact]
    public async Task a_rebuild_keeps_the_block_writer_table_its_replay_would_write_again_row_for_row()
    {
        var repository = new DeviceRepository(new EventStreams(_store!, _dataSource!, _schema), "d9");
        var directory = Directory.CreateTempSubdirectory("tm-rebuild-rows-");
        try
        {
            using var files = new ObjectFiles(directory.FullName);
            var applier = new TransactionApplier(files);
            ConsumeResult<byte[]?, byte[]?>[] log =
            [
                Transaction(0, 0, TransactionKind.Write, 1, "va.d9", 0, 2),
                Transaction(0, 1, TransactionKind.Write, 2, "va.d9", 1, 1),
                Transaction(1, 0, TransactionKind.Write, 3, "vb.d9", 0, 1),
                Transaction(0, 2, TransactionKind.Write, 4, "va.d9", 4, 2),
                Transaction(0, 3, TransactionKind.Write, 5, "va.d9", 4, 4),
                Transaction(0, 4, TransactionKind.Delete, 6, "va.d9", 0, 0),
                Transaction(0, 5, TransactionKind.Write, 7, "va.d9", 2, 1),
                Transaction(1, 1, TransactionKind.Write, 8, "vb.d9", 0, 1),
                Transaction(0, 6, TransactionKind.Write, 9, "va.d9", 5, 3),
                Transaction(0, 7, TransactionKind.Write, 10, "va.d9", 6, 1),
            ];
            var state = await repository.LoadAsync(Ct);
            // Applied the first time in three batches, as they came.
            foreach (var range in new[] { 0..3, 3..6, 6..10 })
                await ApplyAndCommitAsync(repository, applier, files, state, log[range]);
            var first = await BlockWriterRowsAsync();
            Assert.Equal(["va.d9 2+1 seq 7 @0:5", "va.d9 5+3 seq 9 @0:6", "va.d9 6+1 seq 10 @0:7", "vb.d9 0+1 seq 8 @1:1"], first);

            var rebuild = new RebuildState("r3", new Dictionary<int, long> { [0] = 0, [1] = 0 }, new Dictionary<int, long>(state.NextOffsets), DateTimeOffset.UtcNow);
            await repository.BeginRebuildAsync(state, rebuild, Ct);
            Assert.Equal(first, await BlockWriterRowsAsync());
            files.DeleteAll();
            rebuild.Wiped = true;
            // Replayed in batches cut elsewhere than the first time's.
            foreach (var range in new[] { 0..5, 5..10 })
                await ApplyAndCommitAsync(repository, applier, files, state, log[range], rebuild);
            Assert.Equal(first, await BlockWriterRowsAsync());
            Assert.True(rebuild.ReachedEnd(state.NextOffsets));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    /// <summary>A batch applied and recorded as <c>DeviceConsumer</c> does.</summary>
    private async Task ApplyAndCommitAsync(
        DeviceRepository repository, TransactionApplier applier, ObjectFiles files, DeviceState state, ConsumeResult<byte[]?, byte[]?>[] messages,
        RebuildState? rebuild = null)
    {
        var expectedVersion = state.StreamVersion;
        var batch = applier.Apply(messages, state);
        Assert.Empty(batch.Refused);
        files.FlushWritten();
        if (rebuild is not null) rebuild.Transactions += batch.Replayed;
        await repository.CommitBatchAsync(
            expectedVersion, batch.Events, batch.DeletedObjects, batch.ChangedObjects.Values, batch.NextOffsets, batch.OwnerEpochs, Ct, rebuild,
            batch.BlockWrites, batch.WritersDeleted);
    }

    private static ConsumeResult<byte[]?, byte[]?> Transaction(int partition, long offset, TransactionKind kind, long seq, string objectId, long first, int count)
    {
        var objectBytes = Encoding.UTF8.GetBytes(objectId);
        var data = new byte[count * 4096];
        data.AsSpan().Fill((byte)seq);
        var header = new byte[TransactionHeader.Size];
        TransactionCodec.WriteHeader(header, new TransactionHeader(kind, new Tag(1, 1, seq), first, count, 4096, 16, OwnerEpoch: 1), objectBytes, null, data);
        return new ConsumeResult<byte[]?, byte[]?>
        {
            TopicPartitionOffset = new TopicPartitionOffset("tm.device.d9", partition, offset),
            Message = new Message<byte[]?, byte[]?>
            {
                Key = objectBytes,
                Value = data,
                Headers = new Headers { { HeaderNames.Header, header }, { HeaderNames.Object, objectBytes } },
            },
        };
    }

    private async Task<List<string>> BlockWriterRowsAsync()
    {
        var rows = new List<string>();
        await using var cmd = _dataSource!.CreateCommand(
            $"SELECT object_id, first_block, block_count, seq, partition, topic_offset FROM {_schema}.block_writes WHERE device_id = 'd9' ORDER BY object_id, first_block, topic_offset");
        await using var r = await cmd.ExecuteReaderAsync(Ct);
        while (await r.ReadAsync(Ct))
            rows.Add($"{r.GetString(0)} {r.GetInt64(1)}+{r.GetInt32(2)} seq {r.GetInt64(3)} @{r.GetInt32(4)}:{r.GetInt64(5)}");
        return rows;
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
