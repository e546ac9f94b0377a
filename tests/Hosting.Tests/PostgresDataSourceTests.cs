using Npgsql;

namespace TaggedMirror.Hosting.Tests;

/// <summary>
/// The data source every process uses: clear text to a server on this host unless the connection string asks for
/// an SSL mode, the server's default elsewhere, an application name that ties backends to processes, and a pool that
/// leaves the server's connections to the other processes too.
/// Checked against the real PostgreSQL (<c>TM_PG</c> overrides the connection string), whose Debian package has TLS on.
/// </summary>
public sealed class PostgresDataSourceTests
{
    private static readonly string Local = TestPostgres.ConnectionString;

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("localhost", true)]
    [InlineData("LOCALHOST", true)]
    [InlineData("127.0.0.2", true)]
    [InlineData("::1", true)]
    [InlineData("/var/run/postgresql", true)]
    [InlineData("127.0.0.1,localhost", true)]
    [InlineData("localhost:5433", true)]
    [InlineData("127.0.0.1,db.example.com", false)]
    [InlineData("db.example.com", false)]
    [InlineData("10.0.0.5", false)]
    [InlineData("::2", false)]
    [InlineData("localhost.example.com", false)]
    [InlineData("", false)]
    [InlineData(null, false)]
    public void a_host_is_local_only_when_every_listed_host_is_this_machine(string? hosts, bool local) =>
        Assert.Equal(local, PostgresDataSource.IsLoopback(hosts));

    [Theory]
    [InlineData("Host=h;SSL Mode=Require", true)]
    [InlineData("Host=h;sslmode=disable", true)]
    [InlineData("Host=h;SslMode=VerifyFull", true)]
    [InlineData("Host=h;ssl mode=Prefer", true)]
    [InlineData("Host=h;Username=sslmode", false)]
    [InlineData("Host=h", false)]
    public void an_ssl_mode_is_seen_under_any_of_its_spellings(string connectionString, bool sets) =>
        Assert.Equal(sets, PostgresDataSource.SetsSslMode(connectionString));

    [Theory]
    [InlineData("Host=h;Maximum Pool Size=7", 7)]
    [InlineData("Host=h;MaxPoolSize=7", 7)]
    [InlineData("Host=h;maxpoolsize=7", 7)]
    [InlineData("Host=h;MAXIMUM POOL SIZE=200", 200)]
    [InlineData("Host=h;Minimum Pool Size=2", PostgresDataSource.DefaultMaxPoolSize)]
    [InlineData("Host=h", PostgresDataSource.DefaultMaxPoolSize)]
    public void a_process_pools_at_most_the_default_unless_the_connection_string_says_otherwise(string connectionString, int max)
    {
        using var source = PostgresDataSource.Create(connectionString, "Agent");
        Assert.Equal(max, new NpgsqlConnectionStringBuilder(source.ConnectionString).MaxPoolSize);
    }

    [Fact]
    public void only_a_local_server_without_an_ssl_mode_is_reached_in_clear_text()
    {
        using var local = PostgresDataSource.Create("Host=127.0.0.1;Username=u;Password=p;Database=d", "Agent");
        Assert.Equal(SslMode.Disable, new NpgsqlConnectionStringBuilder(local.ConnectionString).SslMode);
        using var asked = PostgresDataSource.Create("Host=127.0.0.1;Username=u;Password=p;Database=d;SSL Mode=Require", "Agent");
        Assert.Equal(SslMode.Require, new NpgsqlConnectionStringBuilder(asked.ConnectionString).SslMode);
        using var remote = PostgresDataSource.Create("Host=db.example.com;Username=u;Password=p;Database=d", "Agent");
        Assert.Equal(new NpgsqlConnectionStringBuilder().SslMode, new NpgsqlConnectionStringBuilder(remote.ConnectionString).SslMode);
    }

    [Fact]
    public async Task a_local_connection_is_clear_text_and_names_its_process_unless_told_otherwise()
    {
        await using (var plain = PostgresDataSource.Create(Local, "Controller"))
        {
            var (ssl, application) = await SessionAsync(plain);
            Assert.False(ssl, "a connection to the local server negotiated TLS");
            Assert.Equal($"tm-controller-{Environment.ProcessId}", application);
        }

        // The server has TLS (Debian's default): asked for, it is used, and a name given is kept.
        await using var tls = PostgresDataSource.Create(Local + ";SSL Mode=Require;Trust Server Certificate=true;Application Name=mine", "Controller");
        var (tlsOn, name) = await SessionAsync(tls);
        Assert.True(tlsOn, "SSL Mode=Require was not honoured");
        Assert.Equal("mine", name);
    }

    private static async Task<(bool Ssl, string Application)> SessionAsync(NpgsqlDataSource dataSource)
    {
        await using var cmd = dataSource.CreateCommand(
            "SELECT s.ssl, a.application_name FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid WHERE s.pid = pg_backend_pid()");
        await using var reader = await cmd.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return (reader.GetBoolean(0), reader.GetString(1));
    }
}
