using JasperFx.Events;
using Marten;
using Marten.Events.Projections;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>Keeps <c>resyncs</c>, every resync done, inline with its event: for volume status and so a repeated request does nothing.</summary>
internal sealed class ResyncLogProjection(string schema) : IProjection
{
    /// <summary>DDL of the projection's table, run by <see cref="ControllerSchema"/>.</summary>
    public static string Ddl(string schema) => $"""
        CREATE TABLE IF NOT EXISTS {schema}.resyncs (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, volume text NOT NULL, tag text, target text NOT NULL, source text NOT NULL,
            first_block bigint NOT NULL, block_count int NOT NULL, extension boolean NOT NULL, bytes bigint NOT NULL,
            duration_ms double precision NOT NULL, repair_tag text NOT NULL, completed_at timestamptz NOT NULL);
        {Hosting.SchemaChanges.IndexIfMissing(schema, "resyncs_tag", $"{schema}.resyncs (volume, tag, target)")}
        -- The missed writes each copy completed (coalesced resyncs complete several); null before coalescing: the tag.
        {Hosting.SchemaChanges.ColumnIfMissing(schema, "resyncs", "tags", "text[]")}
        {Hosting.SchemaChanges.IndexIfMissing(schema, "resyncs_tags", $"{schema}.resyncs USING gin (tags)")}
        """;

    public Task ApplyAsync(IDocumentOperations operations, IReadOnlyList<IEvent> events, CancellationToken cancellation)
    {
        foreach (var e in events)
        {
            if (e.Data is not ResyncCompleted r) continue;
            // In insertion order (an identity): quick appends draw the event's sequence in the database, after this.
            operations.QueueSqlCommand('^', $"""
                INSERT INTO {schema}.resyncs (volume, tag, target, source, first_block, block_count, extension, bytes, duration_ms, repair_tag, completed_at, tags)
                VALUES (^, ^, ^, ^, ^, ^, ^, ^, ^, ^, ^, ^)
                """,
                e.StreamKey!["resync-".Length..], (object?)r.Tag ?? DBNull.Value, r.Target, r.Source, r.FirstBlock, r.BlockCount,
                r.Extension, r.BytesCopied, r.DurationMs, r.RepairTag, e.Timestamp, r.Completed().ToArray());
        }
        return Task.CompletedTask;
    }
}
