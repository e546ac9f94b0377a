using Marten;
using Npgsql;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Hosting.Tests.Events;

/// <summary>
/// Real PostgreSQL (<c>TM_PG</c> overrides the connection string) and the product's Marten configuration. Every test
/// gets its own schema, dropped first and after, so test classes run in parallel.
/// </summary>
public abstract class PgTestBase : IAsyncLifetime
{
    private static readonly string RawConnectionString = TestPostgres.ConnectionString;

    private static readonly Lazy<NpgsqlDataSource> SharedDataSource = new(() =>
    {
        var builder = new NpgsqlConnectionStringBuilder(RawConnectionString) { MaxPoolSize = 60 };
        return NpgsqlDataSource.Create(builder);
    });

    // Each test is bounded; a hang fails the test instead of the whole run.
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(90));
    private DocumentStore? _store;

    protected static NpgsqlDataSource DataSource => SharedDataSource.Value;

    protected string Schema { get; } = "t_" + Guid.NewGuid().ToString("N");

    protected DocumentStore Store => _store ?? throw new InvalidOperationException("Not initialized.");

    protected EventStreams Streams => new(Store, DataSource, Schema);

    protected CancellationToken Ct => _timeout.Token;

    public async Task InitializeAsync()
    {
        await ExecuteAsync($"DROP SCHEMA IF EXISTS {Schema} CASCADE");
        await ExecuteAsync($"CREATE SCHEMA {Schema}");
        await ExecuteAsync($"CREATE TABLE {Schema}.side (id bigserial PRIMARY KEY, note text NOT NULL)");
        await ExecuteAsync($"CREATE TABLE {Schema}.counts (stream_id text PRIMARY KEY, n bigint NOT NULL)");
        await ExecuteAsync($"CREATE TABLE {Schema}.seen (seq bigint PRIMARY KEY, stream_id text NOT NULL, times int NOT NULL)");
        await EventStoreSetup.MigrateAsync(DataSource, Schema, Ct);
        var o = new StoreOptions();
        EventStoreSetup.Configure(o, DataSource, Schema);
        o.Events.MapEventType<Noted>("noted");
        Configure(o);
        _store = new DocumentStore(o);
    }

    /// <summary>Adds the test's projections.</summary>
    protected virtual void Configure(StoreOptions o)
    {
    }

    public async Task DisposeAsync()
    {
        _store?.Dispose();
        await using (var cmd = DataSource.CreateCommand($"DROP SCHEMA IF EXISTS {Schema} CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync(CancellationToken.None);
        }

        _timeout.Dispose();
    }

    protected async Task ExecuteAsync(string sql)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        await cmd.ExecuteNonQueryAsync(Ct);
    }

    protected async Task<long> ScalarAsync(string sql)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        var result = await cmd.ExecuteScalarAsync(Ct);
        return result is null or DBNull ? 0 : Convert.ToInt64(result, System.Globalization.CultureInfo.InvariantCulture);
    }

    protected async Task<List<(string, long)>> PairsAsync(string sql)
    {
        var rows = new List<(string, long)>();
        await using var cmd = DataSource.CreateCommand(sql);
        await using var reader = await cmd.ExecuteReaderAsync(Ct);
        while (await reader.ReadAsync(Ct))
        {
            rows.Add((reader.GetString(0), reader.GetInt64(1)));
        }

        return rows;
    }

    /// <summary>Polls until <paramref name="condition"/> holds; fails with <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    protected async Task EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<Task<string>> what)
    {
        var until = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow >= until) Assert.Fail($"timed out after {timeout}: {await what()}");
            await Task.Delay(50, Ct);
        }
    }
}

/// <summary>The test event.</summary>
public sealed record Noted(int Writer, int Session, int Index);
