using System.Collections.Concurrent;
using System.Diagnostics;
using Npgsql;

namespace TaggedMirror.Hosting.Access;

/// <summary>
/// Finds the principal a presented API key stands for, in the controller's table <c>api_keys</c> (the controller owns
/// it; agents only read it), through a short cache (<see cref="CacheFor"/>): a key revoked elsewhere is refused here
/// within that time. An unknown id is cached too, and the cache is bounded, so keys made up over and over cost at
/// most one query per id and second.
/// </summary>
public sealed class ApiKeyLookup(NpgsqlDataSource dataSource, string schema)
{
    /// <summary>How long a looked-up key (or its absence) is taken as it was.</summary>
    public static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, (Stored? Key, long At)> _cache = new(StringComparer.Ordinal);

    private sealed record Stored(byte[] Salt, byte[] Hash, Principal Principal, bool Revoked);

    /// <summary>The principal of a live key; null when the text is not a key, or the key is unknown, wrong or revoked.</summary>
    public async ValueTask<Principal?> AuthenticateAsync(string? presented, CancellationToken ct)
    {
        if (!KeyText.TryParse(presented, out var id, out var secret)) return null;
        var key = await FindAsync(id, ct).ConfigureAwait(false);
        return key is { Revoked: false } && KeyText.Matches(secret, key.Salt, key.Hash) ? key.Principal : null;
    }

    /// <summary>
    /// The principal of live key <paramref name="id"/>, its holder proven some other way than by the secret (a client
    /// certificate naming the key, on NBD); null when the key is unknown or revoked.
    /// </summary>
    public async ValueTask<Principal?> FindLiveAsync(string id, CancellationToken ct) =>
        KeyText.IsId(id) && await FindAsync(id, ct).ConfigureAwait(false) is { Revoked: false } key ? key.Principal : null;

    /// <summary>Drops what is cached of a key (after its revocation, or every key's after a new one was written).</summary>
    public void Forget(string? id = null)
    {
        if (id is null) _cache.Clear();
        else _cache.TryRemove(id, out _);
    }

    private async ValueTask<Stored?> FindAsync(string id, CancellationToken ct)
    {
        var known = _cache.TryGetValue(id, out var cached);
        if (known && Stopwatch.GetElapsedTime(cached.At) < CacheFor) return cached.Key;
        try
        {
            return await _lookups.RunAsync(id, known && cached.Key is not null ? LookUpAsync : LookUpUnknownAsync, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException && !ct.IsCancellationRequested)
        {
            // PostgreSQL is away. Writes go on through such an outage (they did before there were keys), so a key seen
            // before is taken as it was last seen, and asked for again a second later; one never seen cannot be checked.
            if (!known) throw new KeyLookupUnavailableException(ex);
            _cache[id] = (cached.Key, Stopwatch.GetTimestamp());
            return cached.Key;
        }
    }

    /// <summary>
    /// One query per key at a time, shared by every caller of the moment: the requests of a busy client (an NBD
    /// connection's hundreds, an HTTP client's dozens in flight) all find the cache stale in the same instant once a
    /// second, and each asking on its own connection could take every connection PostgreSQL allows.
    /// </summary>
    private readonly SingleFlight<string, Stored?> _lookups = new(StringComparer.Ordinal);

    /// <summary>
    /// Lookups of ids not known as keys, at most this many at once per process; a key seen before is looked up again
    /// without waiting for them. Each id made up is a lookup of its own (the cache holds an id, not a pattern), and
    /// hundreds of them at once, each on a connection of its own, took every connection PostgreSQL allows, from the
    /// agents' commits too. Queued, they cost time only; and at about a millisecond each, little of it.
    /// </summary>
    public const int UnknownLookupsAtOnce = 4;

    /// <summary>How long a lookup of an id not known as a key may queue for its turn before the request is answered "unavailable".</summary>
    public static readonly TimeSpan UnknownLookupQueueTimeout = TimeSpan.FromSeconds(10);

    private readonly SemaphoreSlim _unknownLookups = new(UnknownLookupsAtOnce);

    private async Task<Stored?> LookUpUnknownAsync(string id)
    {
        if (!await _unknownLookups.WaitAsync(UnknownLookupQueueTimeout).ConfigureAwait(false))
            throw new TimeoutException($"more keys never seen before were presented at once than could be checked within {UnknownLookupQueueTimeout.TotalSeconds:0} s");
        try
        {
            return await LookUpAsync(id).ConfigureAwait(false);
        }
        finally
        {
            _unknownLookups.Release();
        }
    }

    /// <summary>Not on any caller's token: every caller of the moment shares the answer.</summary>
    private async Task<Stored?> LookUpAsync(string id)
    {
        Stored? found = null;
        try
        {
            var conn = await dataSource.OpenConnectionAsync().ConfigureAwait(false);
            await using var disposeConnection = conn.ConfigureAwait(false);
            var cmd = new NpgsqlCommand($"SELECT salt, hash, role, volumes, read_only, revoked_at IS NOT NULL FROM {schema}.api_keys WHERE key_id = @id", conn);
            await using var disposeCommand = cmd.ConfigureAwait(false);
            cmd.Parameters.AddWithValue("id", id);
            var r = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
            await using var disposeReader = r.ConfigureAwait(false);
            if (await r.ReadAsync().ConfigureAwait(false))
                found = new Stored((byte[])r[0], (byte[])r[1], new Principal(id, r.GetString(2), (string[])r[3], r.GetBoolean(4)), r.GetBoolean(5));
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            // No controller has started on this cluster yet: there are no keys.
        }
        if (_cache.Count > 100_000) _cache.Clear();
        _cache[id] = (found, Stopwatch.GetTimestamp());
        return found;
    }
}

/// <summary>
/// A key never seen before could not be checked: PostgreSQL, which holds the keys, did not answer, or more keys never
/// seen before came at once than could be checked in time (<see cref="ApiKeyLookup.UnknownLookupsAtOnce"/>).
/// </summary>
public sealed class KeyLookupUnavailableException(Exception inner)
    : Exception("the API key cannot be checked now: " + (inner is NpgsqlException ? "the cluster's PostgreSQL does not answer" : inner.Message) + "; try again", inner);
