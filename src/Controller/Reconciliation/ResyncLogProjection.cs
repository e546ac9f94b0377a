using System.Text.Json;
using Npgsql;
using TaggedMirror.EventStore;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>Keeps <c>resyncs</c>, every resync done, inline with its event: for volume status and so a repeated request does nothing.</summary>
internal sealed class ResyncLogProjection(string schema) : IInlineProjection
{
    public async Task MigrateAsync(NpgsqlConnection connection, string schemaName, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"""
            CREATE TABLE IF NOT EXISTS {schemaName}.resyncs (
                seq bigint PRIMARY KEY, volume text NOT NULL, tag text, target text NOT NULL, source text NOT NULL,
                first_block bigint NOT NULL, block_count int NOT NULL, extension boolean NOT NULL, bytes bigint NOT NULL,
                duration_ms double precision NOT NULL, repair_tag text NOT NULL, completed_at timestamptz NOT NULL);
            CREATE INDEX IF NOT EXISTS resyncs_tag ON {schemaName}.resyncs (volume, tag, target);
            """, connection);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    public async ValueTask ApplyAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<StoredEvent> events, CancellationToken ct)
    {
        foreach (var e in events)
        {
            if (e.Type != ResyncEventTypes.Completed) continue;
            var r = JsonSerializer.Deserialize(e.Data, ResyncJson.Default.ResyncCompleted)!;
            await using var cmd = new NpgsqlCommand(
                $"INSERT INTO {schema}.resyncs VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING", connection, transaction);
            foreach (var v in new object?[]
                     {
                         e.Sequence, e.StreamId["resync-".Length..], r.Tag, r.Target, r.Source, r.FirstBlock, r.BlockCount, r.Extension,
                         r.BytesCopied, r.DurationMs, r.RepairTag, e.Timestamp,
                     })
            {
                cmd.Parameters.Add(new NpgsqlParameter { Value = v ?? DBNull.Value });
            }
            await cmd.ExecuteNonQueryAsync(ct);
        }
    }
}
