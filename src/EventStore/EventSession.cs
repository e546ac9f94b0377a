using Npgsql;
using NpgsqlTypes;

namespace TaggedMirror.EventStore;

/// <summary>
/// One connection and one transaction. Append to any number of streams, run your own SQL on
/// <see cref="Connection"/>/<see cref="Transaction"/>, then <see cref="CommitAsync"/>: all of it commits or none.
/// Not thread-safe. Disposing without committing rolls back.
/// </summary>
/// <remarks>
/// Events are inserted at <see cref="AppendAsync"/> time (one statement per call), so the returned events carry their
/// real <see cref="StoredEvent.Sequence"/>; they become visible to others at commit. Concurrent sessions appending to
/// the same stream queue on the stream row, so take streams in a consistent order across sessions to avoid deadlocks.
/// </remarks>
public sealed class EventSession : IAsyncDisposable
{
    private readonly PgEventStore _store;
    private List<StoredEvent>? _appended;
    private State _state;

    internal EventSession(PgEventStore store, NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        _store = store;
        Connection = connection;
        Transaction = transaction;
    }

    private enum State
    {
        Open,
        Committed,
        Failed,
        Disposed,
    }

    /// <summary>The session's connection.</summary>
    public NpgsqlConnection Connection { get; }

    /// <summary>The session's transaction; pass it to commands that must commit with the events.</summary>
    public NpgsqlTransaction Transaction { get; }

    /// <summary>Version seen by the last append of an empty batch (for <see cref="PgEventStore.AppendAsync"/>).</summary>
    internal long LastObservedVersion { get; private set; }

    /// <summary>
    /// Appends events to one stream with a single statement. Versions are assigned now; the expected version is checked
    /// now (waiting for a concurrent appender of the same stream to finish first).
    /// </summary>
    /// <param name="streamId">Stream to append to.</param>
    /// <param name="expectedVersion"><see cref="ExpectedVersion.NoStream"/>, <see cref="ExpectedVersion.Any"/>, or the stream's exact current version.</param>
    /// <param name="events">Events in order. An empty list writes nothing but still checks the expected version.</param>
    /// <param name="ct">Cancellation.</param>
    /// <returns>The stored events with their versions and real global sequence numbers.</returns>
    /// <exception cref="StreamVersionConflictException">
    /// The expected version did not hold; this append wrote nothing. Earlier appends of the session are still pending
    /// and may be committed, unless the conflict surfaced as a unique violation (then the transaction is aborted and
    /// the session can only be disposed).
    /// </exception>
    public async ValueTask<IReadOnlyList<StoredEvent>> AppendAsync(string streamId, long expectedVersion, IReadOnlyList<NewEvent> events, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrEmpty(streamId);
        ArgumentNullException.ThrowIfNull(events);
        ArgumentOutOfRangeException.ThrowIfLessThan(expectedVersion, ExpectedVersion.Any);
        EnsureOpen();

        if (events.Count == 0)
        {
            var current = await _store.GetStreamVersionAsync(Connection, Transaction, streamId, ct).ConfigureAwait(false);
            if (expectedVersion != ExpectedVersion.Any && current != expectedVersion)
            {
                throw new StreamVersionConflictException(streamId, expectedVersion, current);
            }

            LastObservedVersion = current;
            return [];
        }

        var count = events.Count;
        var types = new string[count];
        var datas = new byte[count][];
        for (var i = 0; i < count; i++)
        {
            var e = events[i] ?? throw new ArgumentException("Events must not contain null.", nameof(events));
            types[i] = e.Type ?? throw new ArgumentException("Event type must not be null.", nameof(events));
            datas[i] = e.Data ?? throw new ArgumentException("Event data must not be null.", nameof(events));
        }

        var sql = expectedVersion switch
        {
            ExpectedVersion.Any => _store.Sql.AppendAny,
            ExpectedVersion.NoStream => _store.Sql.AppendNoStream,
            _ => _store.Sql.AppendExpected,
        };

        var stored = new StoredEvent[count];
        var rows = 0;
        try
        {
            await using var cmd = new NpgsqlCommand(sql, Connection, Transaction);
            cmd.Parameters.Add(new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = streamId });
            cmd.Parameters.Add(new NpgsqlParameter<long> { NpgsqlDbType = NpgsqlDbType.Bigint, TypedValue = count });
            cmd.Parameters.Add(new NpgsqlParameter<string[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text, TypedValue = types });
            cmd.Parameters.Add(new NpgsqlParameter<byte[][]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb, TypedValue = datas });
            if (expectedVersion > 0)
            {
                cmd.Parameters.Add(new NpgsqlParameter<long> { NpgsqlDbType = NpgsqlDbType.Bigint, TypedValue = expectedVersion });
            }

            // Persistent prepared statement: a no-op after the first time on a physical connection.
            await cmd.PrepareAsync(ct).ConfigureAwait(false);
            await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            long firstVersion = 0;
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                var seq = reader.GetInt64(0);
                var version = reader.GetInt64(1);
                var ts = reader.GetFieldValue<DateTimeOffset>(2);
                if (rows == 0)
                {
                    // Rows come back in insert order, which is ORDER BY ordinality; index by version anyway.
                    firstVersion = version;
                }

                var index = checked((int)(version - firstVersion));
                stored[index] = new StoredEvent(seq, streamId, version, types[index], datas[index], ts);
                rows++;
            }
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            _state = State.Failed;
            long actual = -1;
            try
            {
                actual = await _store.GetStreamVersionAsync(streamId, ct).ConfigureAwait(false);
            }
            catch (NpgsqlException)
            {
                // Best effort: the conflict is what matters.
            }

            throw new StreamVersionConflictException(streamId, expectedVersion, actual, ex);
        }
        catch
        {
            // Any other database error aborted the transaction.
            _state = State.Failed;
            throw;
        }

        if (rows == 0)
        {
            // The claim on the stream row failed; the transaction is intact.
            var actual = await _store.GetStreamVersionAsync(Connection, Transaction, streamId, ct).ConfigureAwait(false);
            throw new StreamVersionConflictException(streamId, expectedVersion, actual);
        }

        if (rows != count)
        {
            _state = State.Failed;
            throw new InvalidOperationException($"Append to '{streamId}' inserted {rows} of {count} events.");
        }

        if (_store.InlineProjections.Count > 0)
        {
            (_appended ??= []).AddRange(stored);
        }

        return stored;
    }

    /// <summary>
    /// Runs the inline projections over every event appended in this session (same transaction), then commits.
    /// If a projection or the commit fails, nothing of the session is kept.
    /// </summary>
    public async Task CommitAsync(CancellationToken ct)
    {
        EnsureOpen();
        try
        {
            if (_appended is { Count: > 0 } appended)
            {
                foreach (var projection in _store.InlineProjections)
                {
                    await projection.ApplyAsync(Connection, Transaction, appended, ct).ConfigureAwait(false);
                }
            }

            await Transaction.CommitAsync(ct).ConfigureAwait(false);
            _state = State.Committed;
        }
        catch
        {
            _state = State.Failed;
            throw;
        }
    }

    /// <summary>Rolls back unless committed, and returns the connection to the pool.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_state == State.Disposed)
        {
            return;
        }

        _state = State.Disposed;
        try
        {
            // Disposing an uncommitted NpgsqlTransaction rolls it back.
            await Transaction.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            await Connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void EnsureOpen()
    {
        switch (_state)
        {
            case State.Open:
                return;
            case State.Committed:
                throw new InvalidOperationException("The session is already committed.");
            case State.Failed:
                throw new InvalidOperationException("The session failed earlier; dispose it and open a new one.");
            default:
                throw new ObjectDisposedException(nameof(EventSession));
        }
    }
}
