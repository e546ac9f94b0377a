using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.TagTable;
using TaggedMirror.EventStore;

namespace TaggedMirror.DeviceAgent.TagTable;

/// <summary>
/// Keeps <c>tag_table</c> equal to the entries recorded and not yet retired, in the same transaction as
/// the events (inline). One INSERT and one DELETE per batch, whatever its size.
/// </summary>
internal sealed class LiveTagTableProjection(string schema) : IInlineProjection
{
    private const string StreamPrefix = "tagtable-";

    public Task MigrateAsync(NpgsqlConnection connection, string schema1, CancellationToken ct) => Task.CompletedTask;

    public async ValueTask ApplyAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<StoredEvent> events, CancellationToken ct)
    {
        List<(string Device, TagRecorded E)>? recorded = null;
        List<(string Device, long Token)>? retired = null;
        foreach (var e in events)
        {
            if (!e.StreamId.StartsWith(StreamPrefix, StringComparison.Ordinal)) continue;
            var device = e.StreamId[StreamPrefix.Length..];
            switch (e.Type)
            {
                case TagTableEventTypes.Recorded:
                    (recorded ??= []).Add((device, JsonSerializer.Deserialize(e.Data, ContractsJson.Default.TagRecorded)!));
                    break;
                case TagTableEventTypes.Retired:
                    (retired ??= []).Add((device, JsonSerializer.Deserialize(e.Data, ContractsJson.Default.TagRetired)!.Token));
                    break;
            }
        }
        if (recorded is { Count: > 0 })
        {
            await using var cmd = new NpgsqlCommand($"""
                INSERT INTO {schema}.tag_table (device_id, token, controller_id, epoch, seq, kind, object_id, first_block, block_count, extension, partition, topic_offset)
                SELECT * FROM unnest(@d, @tok, @c, @e, @s, @k, @o, @f, @n, @x, @p, @off)
                ON CONFLICT DO NOTHING
                """, connection, transaction);
            cmd.Parameters.Add(Array(recorded, r => r.Device, "d", NpgsqlDbType.Text));
            cmd.Parameters.Add(Array(recorded, r => r.E.Token, "tok", NpgsqlDbType.Bigint));
            cmd.Parameters.Add(Array(recorded, r => r.E.Tag.ControllerId, "c", NpgsqlDbType.Integer));
            cmd.Parameters.Add(Array(recorded, r => r.E.Tag.Epoch, "e", NpgsqlDbType.Integer));
            cmd.Parameters.Add(Array(recorded, r => r.E.Tag.Seq, "s", NpgsqlDbType.Bigint));
            cmd.Parameters.Add(Array(recorded, r => (short)r.E.Kind, "k", NpgsqlDbType.Smallint));
            cmd.Parameters.Add(Array(recorded, r => r.E.ObjectId, "o", NpgsqlDbType.Text));
            cmd.Parameters.Add(Array(recorded, r => r.E.FirstBlock, "f", NpgsqlDbType.Bigint));
            cmd.Parameters.Add(Array(recorded, r => r.E.BlockCount, "n", NpgsqlDbType.Integer));
            cmd.Parameters.Add(Array(recorded, r => r.E.Extension, "x", NpgsqlDbType.Boolean));
            cmd.Parameters.Add(Array(recorded, r => r.E.Partition, "p", NpgsqlDbType.Integer));
            cmd.Parameters.Add(Array(recorded, r => r.E.Offset, "off", NpgsqlDbType.Bigint));
            await cmd.ExecuteNonQueryAsync(ct);
        }
        if (retired is { Count: > 0 })
        {
            await using var cmd = new NpgsqlCommand(
                $"DELETE FROM {schema}.tag_table t USING unnest(@d, @tok) AS r(d, tok) WHERE t.device_id = r.d AND t.token = r.tok",
                connection, transaction);
            cmd.Parameters.Add(Array(retired, r => r.Device, "d", NpgsqlDbType.Text));
            cmd.Parameters.Add(Array(retired, r => r.Token, "tok", NpgsqlDbType.Bigint));
            await cmd.ExecuteNonQueryAsync(ct);
        }
    }

    private static NpgsqlParameter Array<TRow, T>(List<TRow> rows, Func<TRow, T> select, string name, NpgsqlDbType type)
    {
        var values = new T[rows.Count];
        for (var i = 0; i < values.Length; i++) values[i] = select(rows[i]);
        return new NpgsqlParameter<T[]>(name, NpgsqlDbType.Array | type) { TypedValue = values };
    }
}
