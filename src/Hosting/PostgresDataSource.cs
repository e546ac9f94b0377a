using System.Diagnostics;
using Npgsql;

namespace TaggedMirror.Hosting;

/// <summary>The PostgreSQL data source every deployable uses.</summary>
public static class PostgresDataSource
{
    /// <summary>
    /// Builds a data source whose commands are traced only inside an operation (a write's record span, a
    /// resync, a request): the loops that poll (the projection daemon, the outbox, the lag monitor) would
    /// otherwise put a root trace per query into the viewer, several a second, and bury the writes.
    /// </summary>
    public static NpgsqlDataSource Create(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        builder.ConfigureTracing(t => t
            .ConfigureCommandFilter(_ => Activity.Current is not null)
            .ConfigureBatchFilter(_ => Activity.Current is not null));
        return builder.Build();
    }
}
