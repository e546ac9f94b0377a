using System.Text;
using System.Text.Json;
using Npgsql;
using TaggedMirror.EventStore;

namespace TaggedMirror.EventStore.Tests;

/// <summary>
/// Real PostgreSQL (<c>TM_PG</c> overrides the connection string). Every test gets its own schema, dropped first and
/// after, so test classes run in parallel.
/// </summary>
public abstract class PgTestBase : IAsyncLifetime
{
    private static readonly string RawConnectionString =
        Environment.GetEnvironmentVariable("TM_PG") ?? "Host=127.0.0.1;Username=tm;Password=tm;Database=tm";

    private static readonly Lazy<NpgsqlDataSource> SharedDataSource = new(() =>
    {
        var builder = new NpgsqlConnectionStringBuilder(RawConnectionString);
        if (!RawConnectionString.Contains("Maximum Pool Size", StringComparison.OrdinalIgnoreCase)
            && !RawConnectionString.Contains("Max Pool Size", StringComparison.OrdinalIgnoreCase))
        {
            builder.MaxPoolSize = 50;
        }

        return NpgsqlDataSource.Create(builder);
    });

    // Each test is bounded; a hang fails the test instead of the whole run.
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(40));
    private PgEventStore? _store;

    /// <summary>With the password (a data source's own ConnectionString drops it).</summary>
    protected static string ConnectionString => RawConnectionString;

    protected static NpgsqlDataSource DataSource => SharedDataSource.Value;

    protected string Schema { get; } = "t_" + Guid.NewGuid().ToString("N");

    protected PgEventStore Store => _store ?? throw new InvalidOperationException("Not initialized.");

    protected CancellationToken Ct => _timeout.Token;

    protected virtual IEnumerable<IInlineProjection>? InlineProjections => null;

    public async Task InitializeAsync()
    {
        await ExecuteAsync($"DROP SCHEMA IF EXISTS {Schema} CASCADE");
        _store = new PgEventStore(DataSource, Schema, InlineProjections);
        await _store.MigrateAsync(Ct);
        await ExecuteAsync($"CREATE TABLE {Schema}.side (id bigserial PRIMARY KEY, note text NOT NULL)");
    }

    public async Task DisposeAsync()
    {
        await using (var cmd = DataSource.CreateCommand($"DROP SCHEMA IF EXISTS {Schema} CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync(CancellationToken.None);
        }

        _timeout.Dispose();
    }

    protected static NewEvent Json(string type, object payload) => new(type, JsonSerializer.SerializeToUtf8Bytes(payload));

    protected static JsonElement Parse(byte[] data) => JsonDocument.Parse(data).RootElement;

    protected static string Text(byte[] data) => Encoding.UTF8.GetString(data);

    protected async Task ExecuteAsync(string sql)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        await cmd.ExecuteNonQueryAsync(Ct);
    }

    protected async Task<T> ScalarAsync<T>(string sql)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        var result = await cmd.ExecuteScalarAsync(Ct);
        return (T)Convert.ChangeType(result!, typeof(T), System.Globalization.CultureInfo.InvariantCulture);
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
}
