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
    /// <remarks>
    /// A server on this host (loopback or a Unix socket) is reached in clear text unless the connection string says
    /// otherwise: Npgsql's default (<c>SSL Mode=Prefer</c>) negotiated TLS with Debian's PostgreSQL (<c>ssl = on</c>),
    /// and encrypting every query and every row on loopback cost a seventh of the controller's CPU under writes (the
    /// profile in docs/benchmarks.md) while protecting nothing that leaves the machine. Any other host keeps the
    /// default; set <c>SSL Mode=Require</c> (or <c>VerifyFull</c>) to insist on TLS.
    /// Connections carry an application name, <c>tm-&lt;component&gt;-&lt;pid&gt;</c>, unless the connection string sets
    /// one: <c>pg_stat_activity</c> then tells which process a server backend works for (the benchmark counts each
    /// backend's CPU to the process it serves).
    /// A process opens at most <see cref="DefaultMaxPoolSize"/> connections unless the connection string sets
    /// <c>Maximum Pool Size</c>: every process of a cluster shares the server's <c>max_connections</c> (100 in Debian's
    /// package), and Npgsql's own default, 100 per process, let one process's burst of requests (hundreds of status
    /// requests at once) take them all: the controller could not renew its leases and refused writes, the agents could
    /// not commit. Past the cap a query waits for a connection of its own process instead.
    /// </remarks>
    public static NpgsqlDataSource Create(string connectionString, string component)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        var settings = builder.ConnectionStringBuilder;
        if (string.IsNullOrEmpty(settings.ApplicationName))
            settings.ApplicationName = ApplicationName(component, Environment.ProcessId);
        if (!SetsSslMode(connectionString) && IsLoopback(settings.Host))
            settings.SslMode = SslMode.Disable;
        if (!SetsMaxPoolSize(connectionString))
            settings.MaxPoolSize = DefaultMaxPoolSize;
        builder.ConfigureTracing(t => t
            .ConfigureCommandFilter(_ => Activity.Current is not null)
            .ConfigureBatchFilter(_ => Activity.Current is not null));
        return builder.Build();
    }

    /// <summary>
    /// The connections a process opens at most unless told otherwise: far above what one uses (a controller holds 5–8
    /// in use under hundreds of reads at once), and a controller and two agents at it together stay within Debian's
    /// <c>max_connections</c> of 100 with room for the operator's <c>psql</c>.
    /// </summary>
    public const int DefaultMaxPoolSize = 30;

    /// <summary>True when the connection string names an SSL mode (under any of its spellings).</summary>
    public static bool SetsSslMode(string connectionString) => Sets(connectionString, "sslmode");

    /// <summary>True when the connection string sets a pool size limit (under any of its spellings).</summary>
    public static bool SetsMaxPoolSize(string connectionString) => Sets(connectionString, "maxpoolsize", "maximumpoolsize");

    /// <summary>True when the connection string has a keyword that is one of <paramref name="keywords"/> once spaces are dropped, in any case.</summary>
    private static bool Sets(string connectionString, params string[] keywords)
    {
        var keys = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString }.Keys;
        return keys.Cast<string>().Any(k => keywords.Contains(k.Replace(" ", "", StringComparison.Ordinal), StringComparer.OrdinalIgnoreCase));
    }

    /// <summary>True when every host of the (comma-separated) list is this machine: loopback names and addresses, or a Unix socket's directory.</summary>
    public static bool IsLoopback(string? hosts) =>
        !string.IsNullOrWhiteSpace(hosts) && hosts.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).All(h =>
        {
            var host = h.Split(':')[0];
            if (h.StartsWith('/') || host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return true;
            var address = h.StartsWith('[') ? h[1..h.IndexOf(']', StringComparison.Ordinal)] : h.Count(c => c == ':') > 1 ? h : host;
            return System.Net.IPAddress.TryParse(address, out var ip) && System.Net.IPAddress.IsLoopback(ip);
        });

    /// <summary>The application name a process's connections carry (see <see cref="Create"/>).</summary>
    public static string ApplicationName(string component, int pid) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"tm-{component.ToLowerInvariant()}-{pid}");
}
