using Npgsql;
using TaggedMirror.Contracts;

namespace TaggedMirror.Controller.Tagging;

/// <summary>
/// Hands out tags (M2). The epoch is bumped in PostgreSQL and committed before the first tag of a start is
/// issued, and the sequence restarts at 1 in every epoch, so no (controller, epoch, seq) is ever issued twice,
/// however the previous run ended.
/// </summary>
internal sealed class TagGenerator
{
    private long _seq;

    public TagGenerator(int controllerId, int epoch)
    {
        ControllerId = controllerId;
        Epoch = epoch;
    }

    public int ControllerId { get; }

    public int Epoch { get; }

    /// <summary>The last sequence handed out.</summary>
    public long Issued => Interlocked.Read(ref _seq);

    public Tag Next() => new(ControllerId, Epoch, Interlocked.Increment(ref _seq));

    /// <summary>Starts a new epoch for <paramref name="controllerId"/> and returns it.</summary>
    public static async Task<int> BeginEpochAsync(NpgsqlDataSource dataSource, string schema, int controllerId, CancellationToken ct)
    {
        await using var cmd = dataSource.CreateCommand($"""
            INSERT INTO {schema}.controller_epochs (controller_id, epoch) VALUES (@c, 1)
            ON CONFLICT (controller_id) DO UPDATE SET epoch = controller_epochs.epoch + 1, started_at = now()
            RETURNING epoch
            """);
        cmd.Parameters.AddWithValue("c", controllerId);
        return (int)(await cmd.ExecuteScalarAsync(ct))!;
    }
}
