using System.Diagnostics;
using System.Security.Cryptography;
using Npgsql;

namespace TaggedMirror.Hosting.Access;

/// <summary>
/// The secret the controller presents to the device agents (<see cref="Header"/>), so that agents serve their reads and
/// control calls to the controller and to operators only, never to producers. It is 32 random bytes made by the first
/// controller to start and kept in its table <c>service_secret</c>: every service of a cluster reaches the same
/// PostgreSQL, and whoever can read that database can already do anything a secret would guard. Agents read it
/// again (at most once a second) when a presented secret does not match what they hold.
/// </summary>
public sealed class ServiceSecret(NpgsqlDataSource dataSource, string schema)
{
    /// <summary>The request header that carries the secret.</summary>
    public const string Header = "X-TM-Service";

    private static readonly TimeSpan RereadAfter = TimeSpan.FromSeconds(1);

    private readonly SemaphoreSlim _reading = new(1, 1);
    private string? _secret;
    private long _readAt;

    /// <summary>The table's definition, created by the controller with its other tables.</summary>
    public static string Ddl(string schema) => $"""
        -- The controller-to-agent secret (issue #12): one row, made by the first controller to start.
        CREATE TABLE IF NOT EXISTS {schema}.service_secret (
            id int PRIMARY KEY CHECK (id = 1),
            secret text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now());
        """;

    /// <summary>The controller, at start: the cluster's secret, made now if there is none yet.</summary>
    public async Task<string> EnsureAsync(CancellationToken ct)
    {
        var made = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var conn = await dataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var disposeConnection = conn.ConfigureAwait(false);
        var cmd = new NpgsqlCommand($"""
            INSERT INTO {schema}.service_secret (id, secret) VALUES (1, @secret) ON CONFLICT (id) DO NOTHING;
            SELECT secret FROM {schema}.service_secret WHERE id = 1;
            """, conn);
        await using var disposeCommand = cmd.ConfigureAwait(false);
        cmd.Parameters.AddWithValue("secret", made);
        _secret = (string)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
        _readAt = Stopwatch.GetTimestamp();
        return _secret;
    }

    /// <summary>The secret as last made or read (the controller made it at start; read again if it was not yet).</summary>
    public async ValueTask<string> CurrentAsync(CancellationToken ct) => _secret ?? await EnsureAsync(ct).ConfigureAwait(false);

    /// <summary>Whether <paramref name="presented"/> is the cluster's secret (constant-time; read again when it does not match and a second has passed).</summary>
    public async ValueTask<bool> MatchesAsync(string? presented, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(presented)) return false;
        if (Same(presented, _secret)) return true;
        if (_readAt != 0 && Stopwatch.GetElapsedTime(_readAt) < RereadAfter) return false;
        await _reading.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_readAt == 0 || Stopwatch.GetElapsedTime(_readAt) >= RereadAfter)
            {
                _secret = await ReadAsync(ct).ConfigureAwait(false);
                _readAt = Stopwatch.GetTimestamp();
            }
        }
        finally
        {
            _reading.Release();
        }
        return Same(presented, _secret);
    }

    private async Task<string?> ReadAsync(CancellationToken ct)
    {
        try
        {
            var conn = await dataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var disposeConnection = conn.ConfigureAwait(false);
            var cmd = new NpgsqlCommand($"SELECT secret FROM {schema}.service_secret WHERE id = 1", conn);
            await using var disposeCommand = cmd.ConfigureAwait(false);
            return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) as string;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return null;   // no controller has started on this cluster yet
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException && !ct.IsCancellationRequested)
        {
            return _secret;   // PostgreSQL is away: the secret last read stands (the controller keeps reading through an outage)
        }
    }

    private static bool Same(string presented, string? secret) =>
        secret is not null && CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(presented), System.Text.Encoding.UTF8.GetBytes(secret));
}
