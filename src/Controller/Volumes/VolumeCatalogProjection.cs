using JasperFx.Events;
using Marten;
using Marten.Events.Projections;

namespace TaggedMirror.Controller.Volumes;

/// <summary>Keeps <c>volume_catalog</c>, the list of volume names, inline with their creation and deletion events.</summary>
internal sealed class VolumeCatalogProjection(string schema) : IProjection
{
    /// <summary>DDL of the projection's table, run by <see cref="ControllerSchema"/>.</summary>
    public static string Ddl(string schema) =>
        $"CREATE TABLE IF NOT EXISTS {schema}.volume_catalog (name text PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now());";

    public Task ApplyAsync(IDocumentOperations operations, IReadOnlyList<IEvent> events, CancellationToken cancellation)
    {
        foreach (var e in events)
        {
            if (e.Data is VolumeCreated created)
                operations.QueueSqlCommand('^', $"INSERT INTO {schema}.volume_catalog (name) VALUES (^) ON CONFLICT DO NOTHING", created.Name);
            else if (e.Data is VolumeDeleted deleted)
                operations.QueueSqlCommand('^', $"DELETE FROM {schema}.volume_catalog WHERE name = ^", deleted.Name);
        }
        return Task.CompletedTask;
    }
}
