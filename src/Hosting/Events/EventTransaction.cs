using JasperFx.Events;
using Marten;
using Marten.Exceptions;
using Marten.Services;
using Npgsql;

namespace TaggedMirror.Hosting.Events;

/// <summary>
/// One PostgreSQL transaction shared by Marten (events appended here, and the inline projections they feed) and the
/// caller's own SQL on <see cref="Connection"/>/<see cref="Transaction"/>: all of it commits or none. Events are sent
/// at <see cref="CommitAsync"/>, where a stream whose version moved is refused. Not thread-safe. Disposing without
/// committing rolls back.
/// </summary>
public sealed class EventTransaction : IAsyncDisposable
{
    private readonly IDocumentSession _session;
    private readonly List<(string Stream, long Expected)> _checked = [];

    internal EventTransaction(IDocumentStore store, NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        Connection = connection;
        Transaction = transaction;
        _session = store.LightweightSession(SessionOptions.ForTransaction(transaction));
    }

    /// <summary>The transaction's connection.</summary>
    public NpgsqlConnection Connection { get; }

    /// <summary>The transaction; pass it to commands that must commit with the events.</summary>
    public NpgsqlTransaction Transaction { get; }

    /// <summary>
    /// Queues events for one stream. <paramref name="expectedVersion"/> is <see cref="ExpectedVersion.NoStream"/>,
    /// <see cref="ExpectedVersion.Any"/>, or the stream's exact current version; it is checked by the server at commit.
    /// </summary>
    /// <returns>The stream's version after the append, or -1 for <see cref="ExpectedVersion.Any"/>.</returns>
    public long Append(string streamId, long expectedVersion, IReadOnlyList<object> events)
    {
        ArgumentException.ThrowIfNullOrEmpty(streamId);
        ArgumentNullException.ThrowIfNull(events);
        ArgumentOutOfRangeException.ThrowIfLessThan(expectedVersion, ExpectedVersion.Any);
        if (events.Count == 0) throw new ArgumentException("An append needs at least one event.", nameof(events));
        var array = events as object[] ?? [.. events];
        _checked.Add((streamId, expectedVersion));
        switch (expectedVersion)
        {
            case ExpectedVersion.Any:
                _session.Events.Append(streamId, array);
                return -1;
            case ExpectedVersion.NoStream:
                _session.Events.StartStream(streamId, array);
                return array.Length;
            default:
                // Marten's expected version is the stream's version after the append.
                _session.Events.Append(streamId, expectedVersion + array.Length, array);
                return expectedVersion + array.Length;
        }
    }

    /// <summary>Sends the queued events (and runs the inline projections), then commits everything.</summary>
    /// <exception cref="StreamVersionConflictException">A stream was not at the expected version; nothing was committed.</exception>
    public async Task CommitAsync(CancellationToken ct)
    {
        await FlushAsync(ct).ConfigureAwait(false);
        await Transaction.CommitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends the queued events (and runs the inline projections) inside the transaction without committing it: their
    /// versions are checked and their sequence numbers drawn now.
    /// </summary>
    /// <exception cref="StreamVersionConflictException">A stream was not at the expected version; roll back.</exception>
    public async Task FlushAsync(CancellationToken ct)
    {
        try
        {
            await _session.SaveChangesAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is EventStreamUnexpectedMaxEventIdException or JasperFx.Events.ExistingStreamIdCollisionException or Marten.Exceptions.ExistingStreamIdCollisionException)
        {
            var (stream, expected) = _checked.Count == 1 ? _checked[0] : (string.Join(", ", _checked.Select(c => c.Stream)), ExpectedVersion.Any);
            throw new StreamVersionConflictException(stream, expected, -1, ex);
        }
        finally
        {
            _checked.Clear();
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _session.DisposeAsync().ConfigureAwait(false);
        await Transaction.DisposeAsync().ConfigureAwait(false);
        await Connection.DisposeAsync().ConfigureAwait(false);
    }
}
