using JasperFx.Events;
using Marten;
using Marten.Events.Projections;
using TaggedMirror.Contracts.TagTable;

namespace TaggedMirror.DeviceAgent.TagTable;

/// <summary>
/// Keeps <c>tag_table</c> equal to the entries recorded and not yet retired, in the same transaction as the events
/// (a Marten inline projection onto a flat table). One INSERT and one DELETE per batch, whatever its size.
/// </summary>
internal sealed class LiveTagTableProjection(string schema) : IProjection
{
    private const string StreamPrefix = "tagtable-";

    public Task ApplyAsync(IDocumentOperations operations, IReadOnlyList<IEvent> events, CancellationToken cancellation)
    {
        List<(string Device, TagRecorded E)>? recorded = null;
        List<(string Device, long Token)>? retired = null;
        foreach (var e in events)
        {
            if (e.StreamKey is not { } stream || !stream.StartsWith(StreamPrefix, StringComparison.Ordinal)) continue;
            var device = stream[StreamPrefix.Length..];
            switch (e.Data)
            {
                case TagRecorded r:
                    (recorded ??= []).Add((device, r));
                    break;
                case TagRetired r:
                    (retired ??= []).Add((device, r.Token));
                    break;
            }
        }
        if (recorded is { Count: > 0 })
        {
            operations.QueueSqlCommand('^', $"""
                INSERT INTO {schema}.tag_table (device_id, token, controller_id, epoch, seq, kind, object_id, first_block, block_count, extension, partition, topic_offset)
                SELECT * FROM unnest(^::text[], ^::bigint[], ^::int[], ^::int[], ^::bigint[], ^::smallint[], ^::text[], ^::bigint[], ^::int[], ^::boolean[], ^::int[], ^::bigint[])
                ON CONFLICT DO NOTHING
                """,
                Column(recorded, r => r.Device), Column(recorded, r => r.E.Token), Column(recorded, r => r.E.Tag.ControllerId),
                Column(recorded, r => r.E.Tag.Epoch), Column(recorded, r => r.E.Tag.Seq), Column(recorded, r => (short)r.E.Kind),
                Column(recorded, r => r.E.ObjectId), Column(recorded, r => r.E.FirstBlock), Column(recorded, r => r.E.BlockCount),
                Column(recorded, r => r.E.Extension), Column(recorded, r => r.E.Partition), Column(recorded, r => r.E.Offset));
        }
        if (retired is { Count: > 0 })
        {
            operations.QueueSqlCommand('^',
                $"DELETE FROM {schema}.tag_table t USING unnest(^::text[], ^::bigint[]) AS r(d, tok) WHERE t.device_id = r.d AND t.token = r.tok",
                Column(retired, r => r.Device), Column(retired, r => r.Token));
        }
        return Task.CompletedTask;
    }

    private static T[] Column<TRow, T>(List<TRow> rows, Func<TRow, T> select)
    {
        var values = new T[rows.Count];
        for (var i = 0; i < values.Length; i++) values[i] = select(rows[i]);
        return values;
    }
}
