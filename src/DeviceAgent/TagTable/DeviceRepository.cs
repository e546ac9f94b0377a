using System.Text.Json;
using Npgsql;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.TagTable;
using TaggedMirror.DeviceAgent.BlockStore;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.DeviceAgent.TagTable;

/// <summary>The device's durable state in PostgreSQL: tag-table stream, live table, objects and offsets.</summary>
internal sealed class DeviceRepository(EventStreams store, string deviceId)
{
    private readonly string _schema = store.Schema;
    private readonly string _stream = TagTableEventTypes.Stream(deviceId);

    public string DeviceId => deviceId;

    public async Task RegisterAsync(string readUrl, CancellationToken ct)
    {
        await using var cmd = store.DataSource.CreateCommand(
            $"INSERT INTO {_schema}.devices (id, read_url) VALUES (@id, @url) ON CONFLICT (id) DO UPDATE SET read_url = excluded.read_url, started_at = now()");
        cmd.Parameters.AddWithValue("id", deviceId);
        cmd.Parameters.AddWithValue("url", readUrl);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    public async Task<DeviceState> LoadAsync(CancellationToken ct)
    {
        var state = new DeviceState { StreamVersion = await store.GetStreamVersionAsync(_stream, ct) };
        await using var conn = await store.DataSource.OpenConnectionAsync(ct);
        await using (var cmd = new NpgsqlCommand(
            $"SELECT object_id, block_size, object_blocks, ext_blocks, needs_full_copy FROM {_schema}.device_objects WHERE device_id = @d", conn))
        {
            cmd.Parameters.AddWithValue("d", deviceId);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                var o = new StorageObject(r.GetString(0), r.GetInt32(1), r.GetInt64(2), r.GetInt64(3), r.GetBoolean(4));
                state.Objects[o.Id] = o;
            }
        }
        await using (var cmd = new NpgsqlCommand(
            $"SELECT partition, next_offset FROM {_schema}.device_offsets WHERE device_id = @d", conn))
        {
            cmd.Parameters.AddWithValue("d", deviceId);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
                state.NextOffsets[r.GetInt32(0)] = r.GetInt64(1);
        }
        await using (var cmd = new NpgsqlCommand(
            $"SELECT object_id, partition, owner_epoch FROM {_schema}.device_owner_epochs WHERE device_id = @d", conn))
        {
            cmd.Parameters.AddWithValue("d", deviceId);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
                state.OwnerEpochs[(r.GetString(0), r.GetInt32(1))] = r.GetInt64(2);
        }
        await using (var cmd = new NpgsqlCommand(
            $"SELECT token, controller_id, epoch, seq, object_id, first_block, block_count, recorded_at FROM {_schema}.tag_table WHERE device_id = @d", conn))
        {
            cmd.Parameters.AddWithValue("d", deviceId);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                state.Live[r.GetInt64(0)] = new LiveEntry(
                    new Tag(r.GetInt32(1), r.GetInt32(2), r.GetInt64(3)), r.GetString(4), r.GetInt64(5), r.GetInt32(6),
                    r.GetFieldValue<DateTimeOffset>(7));
            }
        }
        state.Rebuild = await LoadRebuildAsync(conn, ct);
        return state;
    }

    /// <summary>The device's newest rebuild, running or done.</summary>
    private async Task<RebuildState?> LoadRebuildAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"""
            SELECT rebuild_id, log_start::text, replay_until::text, wiped, transactions, bytes, refused, started_at, completed_at
            FROM {_schema}.device_rebuilds WHERE device_id = @d ORDER BY (completed_at IS NULL) DESC, started_at DESC LIMIT 1
            """, conn);
        cmd.Parameters.AddWithValue("d", deviceId);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        if (!await r.ReadAsync(ct)) return null;
        return new RebuildState(r.GetString(0), Offsets(r.GetString(1)), Offsets(r.GetString(2)), r.GetFieldValue<DateTimeOffset>(7))
        {
            Wiped = r.GetBoolean(3),
            Transactions = r.GetInt64(4),
            Bytes = r.GetInt64(5),
            Refused = r.GetInt64(6),
            CompletedAt = r.IsDBNull(8) ? null : r.GetFieldValue<DateTimeOffset>(8),
        };
    }

    private static Dictionary<int, long> Offsets(string json) =>
        JsonSerializer.Deserialize(json, OffsetsJson.Default.DictionaryInt32Int64)!;

    private static string Json(Dictionary<int, long> offsets) =>
        JsonSerializer.Serialize(offsets, OffsetsJson.Default.DictionaryInt32Int64);

    /// <summary>
    /// Begins a rebuild, in one transaction: its record; every object's capacity and extension forgotten (the
    /// replay finds them again: the object takes the geometry of its first replayed transaction, then grows as it
    /// grew the first time, so a write sent before a grow is applied, not refused for a geometry it no longer has)
    /// and, when the log no longer holds its start, every object marked as needing a full copy with a
    /// <c>log_truncated</c> per partition so the controller's full copy covers it; the owner epochs forgotten (the
    /// replay raises them again in log order, so an old owner's write is applied where it was applied the first
    /// time); and the next offsets moved back to the log's start. The live tag table is kept: those entries' writes are
    /// replayed, and their tokens are still to come. So is the block-writer table: the replay applies the same
    /// transactions in the same order, so it would write the same rows again (and where the log no longer holds its
    /// start, the rows of what fell off still name who wrote what the full copy brings back). The object files are
    /// deleted after this commits.
    /// <para>
    /// Once committed, <paramref name="state"/> is changed the same way, so it is what <see cref="LoadAsync"/> would
    /// read now (DeviceAgent.Tests shows both the same): the replay begins without reading the whole state back,
    /// tens of milliseconds on a busy machine (docs/benchmarks.md, "A first rebuild's fixed costs"). Nothing changes
    /// in it when the commit fails; the caller reloads then.
    /// </para>
    /// </summary>
    public async Task BeginRebuildAsync(DeviceState state, RebuildState rebuild, CancellationToken ct)
    {
        await using var session = await store.BeginAsync(ct);
        var truncations = rebuild.LogStart.Where(kv => kv.Value > 0)
            .Select(kv => (object)new LogTruncated(kv.Key, state.NextOffsets.GetValueOrDefault(kv.Key), kv.Value)).ToList();
        if (truncations.Count > 0)
            session.Append(_stream, state.StreamVersion == 0 ? ExpectedVersion.NoStream : state.StreamVersion, truncations);
        await using (var cmd = new NpgsqlCommand($"""
            INSERT INTO {_schema}.device_rebuilds (device_id, rebuild_id, log_start, replay_until, started_at)
            VALUES (@d, @id, @start::jsonb, @until::jsonb, @at);
            UPDATE {_schema}.device_objects SET object_blocks = 0, ext_blocks = 0, needs_full_copy = @truncated WHERE device_id = @d;
            DELETE FROM {_schema}.device_owner_epochs WHERE device_id = @d;
            """, session.Connection, session.Transaction))
        {
            cmd.Parameters.AddWithValue("d", deviceId);
            cmd.Parameters.AddWithValue("id", rebuild.Id);
            cmd.Parameters.AddWithValue("start", Json(rebuild.LogStart));
            cmd.Parameters.AddWithValue("until", Json(rebuild.ReplayUntil));
            cmd.Parameters.AddWithValue("at", rebuild.StartedAt);
            cmd.Parameters.AddWithValue("truncated", rebuild.LogTruncated);
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await UpsertOffsetsAsync(session, rebuild.LogStart, ct);
        await session.CommitAsync(ct);

        state.StreamVersion += truncations.Count;
        foreach (var o in state.Objects.Values.ToList())
            state.Objects[o.Id] = new StorageObject(o.Id, o.BlockSize, 0, 0, rebuild.LogTruncated);
        state.OwnerEpochs.Clear();
        foreach (var (p, offset) in rebuild.LogStart)
            state.NextOffsets[p] = offset;
        state.Rebuild = rebuild;
    }

    /// <summary>
    /// Records one applied batch: its tag-table events (the live table follows inline), the objects it deleted
    /// (with their block-writer rows, those of <paramref name="writersDeleted"/>: all of them unless given) and then
    /// those it changed (an object deleted and written again in the batch ends up as the new one), its block writes,
    /// and the next offsets, all in one transaction. A crash before commit replays the batch; after commit, the
    /// batch is never applied or recorded again. With a running <paramref name="rebuild"/>, its counts and whether
    /// its object files were deleted go with the batch: the deletion is recorded by the first batch replayed into the
    /// new files, not by a transaction of its own (a crash before that deletes them again, and what was written
    /// into them is replayed again from the same offsets).
    /// </summary>
    public async Task CommitBatchAsync(
        long expectedVersion,
        IReadOnlyList<object> events,
        IReadOnlyCollection<string> deletedObjects,
        IEnumerable<StorageObject> changedObjects,
        IReadOnlyDictionary<int, long> nextOffsets,
        IReadOnlyDictionary<(string ObjectId, int Partition), long> ownerEpochs,
        CancellationToken ct,
        RebuildState? rebuild = null,
        IReadOnlyList<Consumption.BlockWriteRow>? blockWrites = null,
        IReadOnlyCollection<string>? writersDeleted = null)
    {
        await using var session = await store.BeginAsync(ct);
        if (events.Count > 0)
            session.Append(_stream, expectedVersion == 0 ? ExpectedVersion.NoStream : expectedVersion, events);
        await DeleteObjectsAsync(session, deletedObjects, writersDeleted ?? deletedObjects, ct);
        await UpsertObjectsAsync(session, changedObjects, ct);
        await RecordBlockWritesAsync(session, blockWrites ?? [], ct);
        await UpsertOffsetsAsync(session, nextOffsets, ct);
        await UpsertOwnerEpochsAsync(session, ownerEpochs, ct);
        if (rebuild is not null)
        {
            await using var cmd = new NpgsqlCommand($"""
                UPDATE {_schema}.device_rebuilds SET wiped = @w, transactions = @t, bytes = @b, refused = @r, completed_at = @c
                WHERE device_id = @d AND rebuild_id = @id
                """, session.Connection, session.Transaction);
            cmd.Parameters.AddWithValue("d", deviceId);
            cmd.Parameters.AddWithValue("id", rebuild.Id);
            cmd.Parameters.AddWithValue("w", rebuild.Wiped);
            cmd.Parameters.AddWithValue("t", rebuild.Transactions);
            cmd.Parameters.AddWithValue("b", rebuild.Bytes);
            cmd.Parameters.AddWithValue("r", rebuild.Refused);
            cmd.Parameters.AddWithValue("c", rebuild.CompletedAt is { } at ? at : DBNull.Value);
            cmd.Parameters["c"].NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.TimestampTz;
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await session.CommitAsync(ct);
    }

    private async Task DeleteObjectsAsync(
        EventTransaction session, IReadOnlyCollection<string> objectIds, IReadOnlyCollection<string> writersOf, CancellationToken ct)
    {
        if (objectIds.Count == 0) return;
        await using var cmd = new NpgsqlCommand($"""
            DELETE FROM {_schema}.device_objects WHERE device_id = @d AND object_id = ANY(@o);
            DELETE FROM {_schema}.block_writes WHERE device_id = @d AND object_id = ANY(@w);
            DELETE FROM {_schema}.block_write_spans WHERE device_id = @d AND object_id = ANY(@w);
            """, session.Connection, session.Transaction);
        cmd.Parameters.AddWithValue("d", deviceId);
        cmd.Parameters.AddWithValue("o", objectIds.ToArray());
        cmd.Parameters.AddWithValue("w", writersOf.ToArray());
        await cmd.ExecuteNonQueryAsync(ct);
    }

    private async Task UpsertObjectsAsync(EventTransaction session, IEnumerable<StorageObject> objects, CancellationToken ct)
    {
        var list = objects.ToList();
        if (list.Count == 0) return;
        // The whole geometry: a grow changes the capacity, and a rebuild's replay finds the capacity again.
        await using var cmd = new NpgsqlCommand($"""
            INSERT INTO {_schema}.device_objects (device_id, object_id, block_size, object_blocks, ext_blocks, needs_full_copy)
            SELECT @d, * FROM unnest(@o, @bs, @ob, @eb, @nf)
            ON CONFLICT (device_id, object_id) DO UPDATE SET block_size = excluded.block_size, object_blocks = excluded.object_blocks,
                ext_blocks = excluded.ext_blocks, needs_full_copy = excluded.needs_full_copy
            """, session.Connection, session.Transaction);
        cmd.Parameters.AddWithValue("d", deviceId);
        cmd.Parameters.AddWithValue("o", list.Select(o => o.Id).ToArray());
        cmd.Parameters.AddWithValue("bs", list.Select(o => o.BlockSize).ToArray());
        cmd.Parameters.AddWithValue("ob", list.Select(o => o.ObjectBlocks).ToArray());
        cmd.Parameters.AddWithValue("eb", list.Select(o => o.ExtensionBlocks).ToArray());
        cmd.Parameters.AddWithValue("nf", list.Select(o => o.NeedsFullCopy).ToArray());
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// The batch's writes into the block-writer table, then every row of the same object and partition that one of
    /// them, applied later, covers whole (earlier rows of this batch included): what is left for a block always holds
    /// its last writer, and the table stays about as large as the number of distinct ranges written.
    /// </summary>
    private async Task RecordBlockWritesAsync(EventTransaction session, IReadOnlyList<Consumption.BlockWriteRow> rows, CancellationToken ct)
    {
        if (rows.Count == 0) return;
        // The covered rows are found range by range through block_writes_cover (device, object in the C collation,
        // first_block): one index range scan per write of the batch, whatever the table's size and whatever its statistics
        // say. Written so the planner has no other choice: the object id is compared in the C collation, which only that
        // index has (the primary key starts with the same two columns, and a table never analyzed yet, as every new
        // device's is for its first minute, made the planner take it and read every row of the object per write); the
        // lateral subquery is fenced (OFFSET 0, so it is not flattened into a join); partition and offset are compared as
        // expressions (+ 0); and sequential scans are off for this one statement. The plain join this replaced was a hash
        // join over every row of the device (docs/benchmarks.md, "Who wrote a block: the cost", and "The covered rows'
        // index").
        await using var cmd = new NpgsqlCommand($"""
            INSERT INTO {_schema}.block_writes (device_id, object_id, partition, topic_offset, first_block, block_count, controller_id, epoch, seq, kind, owner_epoch, principal)
            SELECT @d, * FROM unnest(@o, @p, @off, @f, @c, @ci, @e, @s, @k, @oe, @w)
            ON CONFLICT DO NOTHING;
            SET LOCAL enable_seqscan = off;
            DELETE FROM {_schema}.block_writes x
            WHERE x.ctid = ANY (ARRAY(
                SELECT y.ctid FROM unnest(@o, @p, @off, @f, @c) AS r(o, p, off, f, c)
                CROSS JOIN LATERAL (
                    SELECT z.ctid FROM {_schema}.block_writes z
                    WHERE z.device_id = @d AND z.object_id COLLATE "C" = r.o AND z.first_block >= r.f AND z.first_block < r.f + r.c
                      AND z.first_block + z.block_count <= r.f + r.c AND z.partition + 0 = r.p AND z.topic_offset + 0 < r.off
                    OFFSET 0) y));
            SET LOCAL enable_seqscan TO DEFAULT;
            INSERT INTO {_schema}.block_write_spans (device_id, object_id, max_blocks)
            SELECT @d, o, max(c) FROM unnest(@o, @c) AS r(o, c) GROUP BY o
            ON CONFLICT (device_id, object_id) DO UPDATE SET max_blocks = excluded.max_blocks
            WHERE block_write_spans.max_blocks < excluded.max_blocks;
            """, session.Connection, session.Transaction);
        cmd.Parameters.AddWithValue("d", deviceId);
        cmd.Parameters.AddWithValue("o", rows.Select(r => r.ObjectId).ToArray());
        cmd.Parameters.AddWithValue("p", rows.Select(r => r.Partition).ToArray());
        cmd.Parameters.AddWithValue("off", rows.Select(r => r.Offset).ToArray());
        cmd.Parameters.AddWithValue("f", rows.Select(r => r.FirstBlock).ToArray());
        cmd.Parameters.AddWithValue("c", rows.Select(r => r.BlockCount).ToArray());
        cmd.Parameters.AddWithValue("ci", rows.Select(r => r.Tag.ControllerId).ToArray());
        cmd.Parameters.AddWithValue("e", rows.Select(r => r.Tag.Epoch).ToArray());
        cmd.Parameters.AddWithValue("s", rows.Select(r => r.Tag.Seq).ToArray());
        cmd.Parameters.AddWithValue("k", rows.Select(r => (short)r.Kind).ToArray());
        cmd.Parameters.AddWithValue("oe", rows.Select(r => r.OwnerEpoch).ToArray());
        cmd.Parameters.Add(new NpgsqlParameter("w", NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text) { Value = rows.Select(r => r.Principal).ToArray() });
        await cmd.ExecuteNonQueryAsync(ct);
    }

    private async Task UpsertOffsetsAsync(EventTransaction session, IReadOnlyDictionary<int, long> offsets, CancellationToken ct)
    {
        if (offsets.Count == 0) return;
        await using var cmd = new NpgsqlCommand($"""
            INSERT INTO {_schema}.device_offsets (device_id, partition, next_offset)
            SELECT @d, * FROM unnest(@p, @o)
            ON CONFLICT (device_id, partition) DO UPDATE SET next_offset = excluded.next_offset
            """, session.Connection, session.Transaction);
        cmd.Parameters.AddWithValue("d", deviceId);
        cmd.Parameters.AddWithValue("p", offsets.Keys.ToArray());
        cmd.Parameters.AddWithValue("o", offsets.Values.ToArray());
        await cmd.ExecuteNonQueryAsync(ct);
    }

    private async Task UpsertOwnerEpochsAsync(EventTransaction session, IReadOnlyDictionary<(string ObjectId, int Partition), long> epochs, CancellationToken ct)
    {
        if (epochs.Count == 0) return;
        await using var cmd = new NpgsqlCommand($"""
            INSERT INTO {_schema}.device_owner_epochs (device_id, object_id, partition, owner_epoch)
            SELECT @d, * FROM unnest(@o, @p, @e)
            ON CONFLICT (device_id, object_id, partition) DO UPDATE SET owner_epoch = greatest(device_owner_epochs.owner_epoch, excluded.owner_epoch)
            """, session.Connection, session.Transaction);
        cmd.Parameters.AddWithValue("d", deviceId);
        cmd.Parameters.AddWithValue("o", epochs.Keys.Select(k => k.ObjectId).ToArray());
        cmd.Parameters.AddWithValue("p", epochs.Keys.Select(k => k.Partition).ToArray());
        cmd.Parameters.AddWithValue("e", epochs.Values.ToArray());
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// What the controller must hear about truncations until it has handled them: the latest <c>log_truncated</c>
    /// of each partition, with the objects still marked as needing a full copy. First clears the marks of objects
    /// whose full copy the controller recorded as covering the device's latest truncation (its <c>full_copies</c>;
    /// the device's rows are written only here, by the device), in the database and in <paramref name="state"/>;
    /// empty once none is marked, so the notices stop by themselves.
    /// </summary>
    public async Task<List<(LogTruncated Truncation, string[] ObjectIds)>> PendingTruncationNoticesAsync(DeviceState state, CancellationToken ct)
    {
        var notices = new List<(LogTruncated, string[])>();
        await using var conn = await store.DataSource.OpenConnectionAsync(ct);
        var objects = new List<string>();
        await using (var cmd = new NpgsqlCommand(
            $"SELECT object_id FROM {_schema}.device_objects WHERE device_id = @d AND needs_full_copy ORDER BY object_id", conn))
        {
            cmd.Parameters.AddWithValue("d", deviceId);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) objects.Add(r.GetString(0));
        }
        if (objects.Count == 0) return notices;

        var covered = await CoveredByFullCopiesAsync(conn, objects, ct);
        if (covered.Count > 0)
        {
            await using var clear = new NpgsqlCommand(
                $"UPDATE {_schema}.device_objects SET needs_full_copy = false WHERE device_id = @d AND object_id = ANY(@o)", conn);
            clear.Parameters.AddWithValue("d", deviceId);
            clear.Parameters.AddWithValue("o", covered.ToArray());
            await clear.ExecuteNonQueryAsync(ct);
            foreach (var id in covered)
            {
                if (state.Objects.TryGetValue(id, out var o)) o.NeedsFullCopy = false;
            }
            objects.RemoveAll(covered.Contains);
            if (objects.Count == 0) return notices;
        }

        await using (var cmd = new NpgsqlCommand($"""
            SELECT DISTINCT ON ((data->>'partition')::int) data::text FROM {_schema}.mt_events
            WHERE stream_id = @s AND type = @t ORDER BY (data->>'partition')::int, version DESC
            """, conn))
        {
            cmd.Parameters.AddWithValue("s", _stream);
            cmd.Parameters.AddWithValue("t", TagTableEventTypes.Truncated);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
                notices.Add((JsonSerializer.Deserialize(r.GetString(0), ContractsJson.Default.LogTruncated)!, [.. objects]));
        }
        return notices;
    }

    /// <summary>Of <paramref name="objects"/>, those whose recorded full copy covers this device's latest truncation.</summary>
    private async Task<HashSet<string>> CoveredByFullCopiesAsync(NpgsqlConnection conn, List<string> objects, CancellationToken ct)
    {
        var covered = new HashSet<string>(StringComparer.Ordinal);
        await using var cmd = new NpgsqlCommand($"""
            SELECT f.object_id FROM {_schema}.full_copies f
            WHERE f.device_id = @d AND f.object_id = ANY(@o)
              AND f.covers_truncation >= (SELECT coalesce(max(version), 0) FROM {_schema}.mt_events WHERE stream_id = @s AND type = @t)
            """, conn);
        cmd.Parameters.AddWithValue("d", deviceId);
        cmd.Parameters.AddWithValue("o", objects.ToArray());
        cmd.Parameters.AddWithValue("s", _stream);
        cmd.Parameters.AddWithValue("t", TagTableEventTypes.Truncated);
        try
        {
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) covered.Add(r.GetString(0));
        }
        catch (PostgresException ex) when (ForeignTables.IsMissing(ex))
        {
            // No controller has started yet: no full copy was recorded.
        }
        return covered;
    }
}
