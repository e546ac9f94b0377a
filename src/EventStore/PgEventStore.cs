using System.Runtime.CompilerServices;
using Npgsql;

namespace TaggedMirror.EventStore;

/// <summary>
/// Event store on PostgreSQL: streams with optimistic concurrency, one global sequence, batched appends and inline
/// projections in the appending transaction. Tables live in <see cref="Schema"/>: <c>streams</c>, <c>events</c>,
/// <c>projection_checkpoints</c>. Thread-safe; hold one per schema.
/// </summary>
public sealed class PgEventStore
{
    private readonly IInlineProjection[] _inlineProjections;
    private readonly List<IAsyncProjection> _asyncProjections = [];
    private readonly Lock _asyncProjectionsLock = new();

    /// <summary>Creates the store. Call <see cref="MigrateAsync"/> once (any process may) before use.</summary>
    /// <param name="dataSource">Connections; the store never disposes it.</param>
    /// <param name="schema">Lower-case SQL identifier holding the tables.</param>
    /// <param name="inlineProjections">Projections applied in every committing session that appended events.</param>
    public PgEventStore(NpgsqlDataSource dataSource, string schema = "tm", IEnumerable<IInlineProjection>? inlineProjections = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentException.ThrowIfNullOrEmpty(schema);
        if (schema.Length > 63 || !IsPlainIdentifier(schema))
        {
            throw new ArgumentException($"Schema '{schema}' must be a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63 characters).", nameof(schema));
        }

        DataSource = dataSource;
        Schema = schema;
        Sql = new EventStoreSql(schema);
        _inlineProjections = inlineProjections?.ToArray() ?? [];
        foreach (var p in _inlineProjections)
        {
            ArgumentNullException.ThrowIfNull(p, nameof(inlineProjections));
        }
    }

    /// <summary>Schema holding the store's tables.</summary>
    public string Schema { get; }

    /// <summary>Where connections come from.</summary>
    public NpgsqlDataSource DataSource { get; }

    internal EventStoreSql Sql { get; }

    internal IReadOnlyList<IInlineProjection> InlineProjections => _inlineProjections;

    /// <summary>
    /// Registers an async projection so <see cref="MigrateAsync"/> creates its tables and checkpoint row.
    /// <see cref="ProjectionDaemon"/> registers its projection itself.
    /// </summary>
    public void AddAsyncProjection(IAsyncProjection projection)
    {
        ArgumentNullException.ThrowIfNull(projection);
        lock (_asyncProjectionsLock)
        {
            if (!_asyncProjections.Contains(projection))
            {
                _asyncProjections.Add(projection);
            }
        }
    }

    /// <summary>
    /// Creates the schema, tables, inline projections' and registered async projections' tables. Idempotent and safe to
    /// call from concurrent processes: everything runs in one transaction under a per-schema advisory lock.
    /// </summary>
    public Task MigrateAsync(CancellationToken ct)
    {
        IAsyncProjection[] asyncProjections;
        lock (_asyncProjectionsLock)
        {
            asyncProjections = [.. _asyncProjections];
        }

        return MigrateCoreAsync(asyncProjections, ct);
    }

    internal async Task MigrateCoreAsync(IReadOnlyList<IAsyncProjection> asyncProjections, CancellationToken ct)
    {
        await using var connection = await DataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using (var cmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", connection, tx))
        {
            cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Sql.MigrationLockKey });
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        await using (var cmd = new NpgsqlCommand(Sql.Migrate, connection, tx))
        {
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        foreach (var p in _inlineProjections)
        {
            await p.MigrateAsync(connection, Schema, ct).ConfigureAwait(false);
        }

        foreach (var p in asyncProjections)
        {
            await p.MigrateAsync(connection, Schema, ct).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand(Sql.EnsureCheckpoint, connection, tx);
            cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = p.Name });
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Opens a session: one connection and one transaction (READ COMMITTED). Dispose it; uncommitted work rolls back.</summary>
    public async Task<EventSession> OpenSessionAsync(CancellationToken ct)
    {
        var connection = await DataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        try
        {
            var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
            return new EventSession(this, connection, tx);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Appends to one stream in its own transaction (inline projections included) and commits.</summary>
    /// <returns>The stream's version after the append.</returns>
    /// <exception cref="StreamVersionConflictException">The expected version did not hold; nothing was written.</exception>
    public async Task<long> AppendAsync(string streamId, long expectedVersion, IReadOnlyList<NewEvent> events, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(events);
        await using var session = await OpenSessionAsync(ct).ConfigureAwait(false);
        var stored = await session.AppendAsync(streamId, expectedVersion, events, ct).ConfigureAwait(false);
        await session.CommitAsync(ct).ConfigureAwait(false);
        return stored.Count > 0 ? stored[^1].Version : session.LastObservedVersion;
    }

    /// <summary>Reads a stream's events with version &gt;= <paramref name="fromVersion"/>, in version order.</summary>
    public async IAsyncEnumerable<StoredEvent> ReadStreamAsync(string streamId, long fromVersion, [EnumeratorCancellation] CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(streamId);
        await using var connection = await DataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand(Sql.ReadStream, connection);
        cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = streamId });
        cmd.Parameters.Add(new NpgsqlParameter<long> { TypedValue = fromVersion });
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            yield return ReadEvent(reader);
        }
    }

    /// <summary>The stream's current version; 0 when it does not exist.</summary>
    public async Task<long> GetStreamVersionAsync(string streamId, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(streamId);
        await using var connection = await DataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        return await GetStreamVersionAsync(connection, null, streamId, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads up to <paramref name="maxCount"/> committed events with sequence &gt; <paramref name="afterSequence"/>, in
    /// sequence order. No protection against transactions still in flight: an event with a lower sequence may commit
    /// later. Use <see cref="ProjectionDaemon"/> when that matters.
    /// </summary>
    public async IAsyncEnumerable<StoredEvent> ReadAllAsync(long afterSequence, int maxCount, [EnumeratorCancellation] CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxCount);
        await using var connection = await DataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var cmd = CreateReadRangeCommand(connection, null, afterSequence, long.MaxValue, maxCount);
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            yield return ReadEvent(reader);
        }
    }

    internal async Task<long> GetStreamVersionAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, string streamId, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(Sql.StreamVersion, connection, tx);
        cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = streamId });
        var result = await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
        return result is long v ? v : 0;
    }

    internal NpgsqlCommand CreateReadRangeCommand(NpgsqlConnection connection, NpgsqlTransaction? tx, long afterSequence, long upToSequence, int maxCount)
    {
        var cmd = new NpgsqlCommand(Sql.ReadRange, connection, tx);
        cmd.Parameters.Add(new NpgsqlParameter<long> { TypedValue = afterSequence });
        cmd.Parameters.Add(new NpgsqlParameter<long> { TypedValue = upToSequence });
        cmd.Parameters.Add(new NpgsqlParameter<long> { TypedValue = maxCount });
        return cmd;
    }

    /// <summary>Reads a row shaped <c>seq, stream_id, version, type, data, ts</c>.</summary>
    internal static StoredEvent ReadEvent(NpgsqlDataReader reader) => new(
        reader.GetInt64(0),
        reader.GetString(1),
        reader.GetInt64(2),
        reader.GetString(3),
        reader.GetFieldValue<byte[]>(4),
        reader.GetFieldValue<DateTimeOffset>(5));

    // The schema is spliced into SQL text unquoted, so only plain lower-case identifiers are accepted.
    private static bool IsPlainIdentifier(string name)
    {
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            var ok = c is (>= 'a' and <= 'z') or '_' || (i > 0 && c is >= '0' and <= '9');
            if (!ok)
            {
                return false;
            }
        }

        return true;
    }
}
