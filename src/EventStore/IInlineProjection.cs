using Npgsql;

namespace TaggedMirror.EventStore;

/// <summary>
/// A projection applied inside the appending transaction, at <see cref="EventSession.CommitAsync"/>.
/// If it throws, the whole session (events included) rolls back.
/// </summary>
public interface IInlineProjection
{
    /// <summary>Creates the projection's tables idempotently. Runs inside the store's migration transaction.</summary>
    Task MigrateAsync(NpgsqlConnection connection, string schema, CancellationToken ct);

    /// <summary>Applies every event appended in the session, in append order.</summary>
    ValueTask ApplyAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<StoredEvent> events, CancellationToken ct);
}
