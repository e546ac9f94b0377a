using Npgsql;

namespace TaggedMirror.EventStore;

/// <summary>A projection run by a <see cref="ProjectionDaemon"/>, in global sequence order, after the events committed.</summary>
public interface IAsyncProjection
{
    /// <summary>Unique name; the key of the projection's checkpoint.</summary>
    string Name { get; }

    /// <summary>Creates the projection's tables idempotently. Runs inside the store's migration transaction.</summary>
    Task MigrateAsync(NpgsqlConnection c, string schema, CancellationToken ct);

    /// <summary>
    /// Applies a batch of events (ordered by sequence, each exactly once unless the transaction fails and is retried).
    /// Write only through <paramref name="t"/>: the checkpoint is stored in the same transaction.
    /// </summary>
    ValueTask ApplyAsync(NpgsqlConnection c, NpgsqlTransaction t, IReadOnlyList<StoredEvent> events, CancellationToken ct);
}
