using Npgsql;
using TaggedMirror.EventStore;

namespace TaggedMirror.Controller.Volumes;

/// <summary>Keeps <c>volume_catalog</c>, the list of volume names, inline with their creation events.</summary>
internal sealed class VolumeCatalogProjection(string schema) : IInlineProjection
{
    public async Task MigrateAsync(NpgsqlConnection connection, string schemaName, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(
            $"CREATE TABLE IF NOT EXISTS {schemaName}.volume_catalog (name text PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now())", connection);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    public async ValueTask ApplyAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<StoredEvent> events, CancellationToken ct)
    {
        foreach (var e in events)
        {
            if (e.Type != VolumeEventTypes.Created) continue;
            await using var cmd = new NpgsqlCommand(
                $"INSERT INTO {schema}.volume_catalog (name) VALUES (@n) ON CONFLICT DO NOTHING", connection, transaction);
            cmd.Parameters.AddWithValue("n", e.StreamId["volume-".Length..]);
            await cmd.ExecuteNonQueryAsync(ct);
        }
    }
}
