using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using TaggedMirror.Contracts.Intake;
using TaggedMirror.Contracts.TagTable;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Controller.Intake;

/// <summary>The intake's PostgreSQL work: its own tables (<see cref="IntakeSchema"/>) and the devices' <c>tag_recorded</c> events, read.</summary>
internal sealed class IntakeStore(EventStreams store)
{
    private const int MaxQuarantinedValueBytes = 1024 * 1024;

    private NpgsqlDataSource Db => store.DataSource;

    private string Schema => store.Schema;

    /// <summary>
    /// Deletes at most <paramref name="limit"/> answered request ids, the oldest first, answered longer ago than
    /// <paramref name="retention"/>; returns how many. A pending one is never deleted (its write's fate is still to be
    /// settled), nor one answered again since it was chosen.
    /// </summary>
    public async Task<int> PruneAnsweredAsync(TimeSpan retention, int limit, CancellationToken ct)
    {
        await using var cmd = Db.CreateCommand($"""
            DELETE FROM {Schema}.intake_requests r
            USING (SELECT producer_id, request_id FROM {Schema}.intake_requests
                   WHERE state = 'answered' AND updated_at < now() - @r ORDER BY updated_at LIMIT @n) old
            WHERE r.producer_id = old.producer_id AND r.request_id = old.request_id AND r.state = 'answered' AND r.updated_at < now() - @r
            """);
        cmd.Parameters.AddWithValue("r", retention);
        cmd.Parameters.AddWithValue("n", limit);
        return await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// The key holding <paramref name="producerId"/> after <paramref name="keyId"/> claims it: the id is taken when no
    /// key holds it, or when <paramref name="replacing"/> (a key found not live) still does; otherwise the holder stays.
    /// </summary>
    public async Task<string> ClaimProducerAsync(string producerId, string keyId, string? replacing, CancellationToken ct)
    {
        await using var cmd = Db.CreateCommand($"""
            WITH claim AS (
                INSERT INTO {Schema}.intake_producers (producer_id, key_id) VALUES (@p, @k)
                ON CONFLICT (producer_id) DO UPDATE SET key_id = EXCLUDED.key_id, claimed_at = now()
                    WHERE {Schema}.intake_producers.key_id = @replacing
                RETURNING key_id)
            SELECT key_id FROM claim
            UNION ALL
            SELECT key_id FROM {Schema}.intake_producers WHERE producer_id = @p AND NOT EXISTS (SELECT 1 FROM claim)
            """);
        cmd.Parameters.AddWithValue("p", producerId);
        cmd.Parameters.AddWithValue("k", keyId);
        cmd.Parameters.AddWithValue("replacing", NpgsqlDbType.Text, (object?)replacing ?? DBNull.Value);
        return (string)(await cmd.ExecuteScalarAsync(ct))!;
    }

    /// <summary>The volume's positions per partition (none: it never had a request handled).</summary>
    public async Task<Dictionary<int, long>> PositionsAsync(string volume, CancellationToken ct)
    {
        var result = new Dictionary<int, long>();
        await using var cmd = Db.CreateCommand($"SELECT partition, next_offset FROM {Schema}.intake_positions WHERE volume = @v");
        cmd.Parameters.AddWithValue("v", volume);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) result[r.GetInt32(0)] = r.GetInt64(1);
        return result;
    }

    public async Task<bool> VolumeExistsAsync(string volume, CancellationToken ct)
    {
        await using var cmd = Db.CreateCommand($"SELECT 1 FROM {Schema}.volume_catalog WHERE name = @v");
        cmd.Parameters.AddWithValue("v", volume);
        return await cmd.ExecuteScalarAsync(ct) is not null;
    }

    /// <summary>The stored rows of these requests, by <see cref="IntakeCodec.RequestKey"/>.</summary>
    public async Task<Dictionary<string, StoredRequest>> LookupAsync(IReadOnlyCollection<(string Producer, string Request)> ids, CancellationToken ct)
    {
        var result = new Dictionary<string, StoredRequest>(StringComparer.Ordinal);
        if (ids.Count == 0) return result;
        await using var cmd = Db.CreateCommand($"""
            SELECT r.producer_id, r.request_id, r.volume, r.state, r.outcome::text, r.partition, r."offset"
            FROM {Schema}.intake_requests r JOIN unnest(@p, @q) AS k(p, q) ON r.producer_id = k.p AND r.request_id = k.q
            """);
        cmd.Parameters.AddWithValue("p", ids.Select(i => i.Producer).ToArray());
        cmd.Parameters.AddWithValue("q", ids.Select(i => i.Request).ToArray());
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            var outcome = r.IsDBNull(4) ? null : JsonSerializer.Deserialize(r.GetString(4), IntakeJson.Default.IntakeOutcome);
            result[IntakeCodec.RequestKey(r.GetString(0), r.GetString(1))] =
                new StoredRequest(r.GetString(2), r.GetString(3) == "answered", outcome, r.GetInt32(5), r.GetInt64(6));
        }
        return result;
    }

    /// <summary>
    /// Records requests as pending before any of them is written, committed when this returns. Returns the keys this
    /// call inserted; a request already there (answered, or pending from an earlier attempt) is left as it is.
    /// </summary>
    public async Task<HashSet<string>> InsertPendingAsync(IReadOnlyList<(string Producer, string Request, string Volume, int Partition, long Offset)> rows, CancellationToken ct)
    {
        var inserted = new HashSet<string>(StringComparer.Ordinal);
        if (rows.Count == 0) return inserted;
        await using var cmd = Db.CreateCommand($"""
            INSERT INTO {Schema}.intake_requests (producer_id, request_id, volume, state, partition, "offset")
            SELECT * FROM unnest(@p, @q, @v, @s, @part, @o)
            ON CONFLICT (producer_id, request_id) DO NOTHING
            RETURNING producer_id, request_id
            """);
        cmd.Parameters.AddWithValue("p", rows.Select(x => x.Producer).ToArray());
        cmd.Parameters.AddWithValue("q", rows.Select(x => x.Request).ToArray());
        cmd.Parameters.AddWithValue("v", rows.Select(x => x.Volume).ToArray());
        cmd.Parameters.AddWithValue("s", rows.Select(_ => "pending").ToArray());
        cmd.Parameters.AddWithValue("part", rows.Select(x => x.Partition).ToArray());
        cmd.Parameters.AddWithValue("o", rows.Select(x => x.Offset).ToArray());
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) inserted.Add(IntakeCodec.RequestKey(r.GetString(0), r.GetString(1)));
        return inserted;
    }

    /// <summary>
    /// One transaction: the outcomes (a pending row becomes answered; an answered one is never changed; a request not
    /// there yet, a refusal, is inserted answered), the quarantined requests, and the volume's positions (never backwards).
    /// </summary>
    public async Task CommitAsync(
        string volume, IReadOnlyList<(IntakeOutcome Outcome, int Partition, long Offset)> answered, IReadOnlyList<QuarantinedRequest> quarantined,
        IReadOnlyDictionary<int, long> positions, CancellationToken ct)
    {
        await using var conn = await Db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using var batch = new NpgsqlBatch(conn, tx);
        foreach (var (o, partition, offset) in answered)
        {
            var c = new NpgsqlBatchCommand($"""
                INSERT INTO {Schema}.intake_requests AS r (producer_id, request_id, volume, state, outcome, partition, "offset")
                VALUES (@p, @q, @v, 'answered', @o, @part, @off)
                ON CONFLICT (producer_id, request_id) DO UPDATE SET state = 'answered', outcome = excluded.outcome, updated_at = now()
                WHERE r.state = 'pending'
                """);
            c.Parameters.AddWithValue("p", o.ProducerId);
            c.Parameters.AddWithValue("q", o.RequestId);
            c.Parameters.AddWithValue("v", o.Volume);
            c.Parameters.AddWithValue("o", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(o, IntakeJson.Default.IntakeOutcome));
            c.Parameters.AddWithValue("part", partition);
            c.Parameters.AddWithValue("off", offset);
            batch.BatchCommands.Add(c);
        }
        foreach (var q in quarantined) batch.BatchCommands.Add(QuarantineCommand(q, returning: false));
        foreach (var (partition, next) in positions)
        {
            var c = new NpgsqlBatchCommand($"""
                INSERT INTO {Schema}.intake_positions AS p (volume, partition, next_offset) VALUES (@v, @part, @n)
                ON CONFLICT (volume, partition) DO UPDATE SET next_offset = GREATEST(p.next_offset, excluded.next_offset)
                """);
            c.Parameters.AddWithValue("v", volume);
            c.Parameters.AddWithValue("part", partition);
            c.Parameters.AddWithValue("n", next);
            batch.BatchCommands.Add(c);
        }
        if (batch.BatchCommands.Count > 0) await batch.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>
    /// A request for no known volume, or unreadable: the first controller to quarantine the message answers it. Returns
    /// false when another did; else the outcome to publish (the request's first one when its id was answered before,
    /// else <paramref name="refusal"/>, now recorded), or null when the request has no ids to answer.
    /// </summary>
    public async Task<(bool Claimed, IntakeOutcome? Publish)> ClaimUnownedAsync(QuarantinedRequest q, IntakeOutcome? refusal, CancellationToken ct)
    {
        await using var conn = await Db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using (var claim = new NpgsqlBatch(conn, tx) { BatchCommands = { QuarantineCommand(q, returning: true) } })
        {
            if (await claim.ExecuteScalarAsync(ct) is null) return (false, null);
        }
        IntakeOutcome? publish = null;
        if (refusal is not null)
        {
            await using var cmd = new NpgsqlCommand($"""
                WITH ins AS (
                    INSERT INTO {Schema}.intake_requests (producer_id, request_id, volume, state, outcome, partition, "offset")
                    VALUES (@p, @q, @v, 'answered', @o, @part, @off)
                    ON CONFLICT (producer_id, request_id) DO NOTHING
                    RETURNING outcome::text)
                SELECT outcome FROM ins
                UNION ALL
                SELECT outcome::text FROM {Schema}.intake_requests WHERE producer_id = @p AND request_id = @q AND NOT EXISTS (SELECT 1 FROM ins)
                """, conn, tx);
            cmd.Parameters.AddWithValue("p", refusal.ProducerId);
            cmd.Parameters.AddWithValue("q", refusal.RequestId);
            cmd.Parameters.AddWithValue("v", refusal.Volume);
            cmd.Parameters.AddWithValue("o", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(refusal, IntakeJson.Default.IntakeOutcome));
            cmd.Parameters.AddWithValue("part", q.Partition);
            cmd.Parameters.AddWithValue("off", q.Offset);
            // Pending elsewhere (its write under way on the volume it named first): this copy gets the refusal, unrecorded.
            publish = await cmd.ExecuteScalarAsync(ct) is string json ? JsonSerializer.Deserialize(json, IntakeJson.Default.IntakeOutcome) : refusal;
        }
        await tx.CommitAsync(ct);
        return (true, publish);
    }

    /// <summary>
    /// The copies of an intake write the devices recorded: <c>tag_recorded</c> events whose request is
    /// <paramref name="requestKey"/>, on the given mirrors' objects. A scan of those devices' streams, made only for a
    /// request whose fate is unknown (a restart or takeover between its write and its outcome).
    /// </summary>
    public async Task<List<RecordedCopy>> RecordedAsync(string requestKey, IEnumerable<(string DeviceId, string ObjectId)> mirrors, CancellationToken ct)
    {
        var list = mirrors.ToList();
        await using var cmd = Db.CreateCommand($"""
            SELECT substr(stream_id, length('tagtable-') + 1),
                   concat_ws(':', data->'tag'->>'controllerId', data->'tag'->>'epoch', data->'tag'->>'seq'),
                   (data->>'firstBlock')::bigint, (data->>'blockCount')::int
            FROM {Schema}.mt_events
            WHERE type = '{TagTableEventTypes.Recorded}' AND stream_id = ANY(@s) AND data->>'requestId' = @r AND data->>'objectId' = ANY(@o)
            ORDER BY seq_id
            """);
        cmd.Parameters.AddWithValue("s", list.Select(m => TagTableEventTypes.Stream(m.DeviceId)).ToArray());
        cmd.Parameters.AddWithValue("r", requestKey);
        cmd.Parameters.AddWithValue("o", list.Select(m => m.ObjectId).ToArray());
        var result = new List<RecordedCopy>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) result.Add(new RecordedCopy(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt32(3)));
        return result;
    }

    private NpgsqlBatchCommand QuarantineCommand(QuarantinedRequest q, bool returning)
    {
        var c = new NpgsqlBatchCommand($"""
            INSERT INTO {Schema}.intake_quarantine (partition, "offset", volume, producer_id, request_id, reason, key, envelope, value)
            VALUES (@part, @off, @v, @p, @q, @reason, @key, @env, @value)
            ON CONFLICT (partition, "offset") DO NOTHING
            {(returning ? "RETURNING 1" : "")}
            """);
        c.Parameters.AddWithValue("part", q.Partition);
        c.Parameters.AddWithValue("off", q.Offset);
        c.Parameters.AddWithValue("v", (object?)q.Volume ?? DBNull.Value);
        c.Parameters.AddWithValue("p", (object?)q.ProducerId ?? DBNull.Value);
        c.Parameters.AddWithValue("q", (object?)q.RequestId ?? DBNull.Value);
        c.Parameters.AddWithValue("reason", q.Reason);
        c.Parameters.AddWithValue("key", NpgsqlDbType.Bytea, (object?)q.Key ?? DBNull.Value);
        c.Parameters.AddWithValue("env", NpgsqlDbType.Bytea, (object?)q.Envelope ?? DBNull.Value);
        c.Parameters.AddWithValue("value", NpgsqlDbType.Bytea, q.Value is { Length: <= MaxQuarantinedValueBytes } v ? v : DBNull.Value);
        return c;
    }
}
