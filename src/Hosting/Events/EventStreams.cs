using JasperFx.Events;
using Marten;
using Npgsql;

namespace TaggedMirror.Hosting.Events;

/// <summary>
/// Where a process reaches the cluster's database: Marten's event store for streams, and the same data source and
/// schema for the product's own tables. Appends go through <see cref="EventTransaction"/>, which shares one
/// PostgreSQL transaction between the events (with their inline projections) and the caller's SQL.
/// </summary>
public sealed class EventStreams(IDocumentStore store, NpgsqlDataSource dataSource, string schema)
{
    /// <summary>Marten's store.</summary>
    public IDocumentStore Store => store;

    /// <summary>Connections to the cluster's database.</summary>
    public NpgsqlDataSource DataSource => dataSource;

    /// <summary>The cluster's schema: Marten's <c>mt_events</c>/<c>mt_streams</c> and the product's tables.</summary>
    public string Schema => schema;

    /// <summary>Opens a connection and a transaction (READ COMMITTED) with a Marten session enlisted in it.</summary>
    public async Task<EventTransaction> BeginAsync(CancellationToken ct)
    {
        var connection = await dataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        try
        {
            var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
            return new EventTransaction(store, connection, tx);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Appends to one stream in its own transaction and commits.</summary>
    /// <returns>The stream's version after the append (for <see cref="ExpectedVersion.Any"/>, read back after commit).</returns>
    /// <exception cref="StreamVersionConflictException">The expected version did not hold; nothing was written.</exception>
    public async Task<long> AppendAsync(string streamId, long expectedVersion, IReadOnlyList<object> events, CancellationToken ct)
    {
        var tx = await BeginAsync(ct).ConfigureAwait(false);
        await using var disposeTx = tx.ConfigureAwait(false);
        var version = tx.Append(streamId, expectedVersion, events);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return version >= 0 ? version : await GetStreamVersionAsync(streamId, ct).ConfigureAwait(false);
    }

    /// <summary>A stream's events in version order; empty when it does not exist.</summary>
    public async Task<IReadOnlyList<IEvent>> ReadStreamAsync(string streamId, CancellationToken ct)
    {
        var session = store.QuerySession();
        await using var disposeSession = session.ConfigureAwait(false);
        return await session.Events.FetchStreamAsync(streamId, token: ct).ConfigureAwait(false);
    }

    /// <summary>The stream's current version; 0 when it does not exist.</summary>
    public async Task<long> GetStreamVersionAsync(string streamId, CancellationToken ct)
    {
        var session = store.QuerySession();
        await using var disposeSession = session.ConfigureAwait(false);
        var state = await session.Events.FetchStreamStateAsync(streamId, ct).ConfigureAwait(false);
        return state?.Version ?? 0;
    }
}
