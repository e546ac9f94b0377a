using Npgsql;

namespace TaggedMirror.EventStore;

/// <summary>An async projection that can wipe its own state before <see cref="ProjectionDaemon.RebuildAsync"/> replays it.</summary>
public interface IResettableProjection : IAsyncProjection
{
    /// <summary>Deletes the projection's state; runs in the same transaction that resets the checkpoint to 0.</summary>
    ValueTask ResetAsync(NpgsqlConnection c, NpgsqlTransaction t, CancellationToken ct);
}
