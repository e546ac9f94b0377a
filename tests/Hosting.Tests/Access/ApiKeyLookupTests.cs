using Npgsql;
using TaggedMirror.Hosting.Access;

namespace TaggedMirror.Hosting.Tests.Access;

/// <summary>
/// The API key lookup against the real PostgreSQL, its <c>api_keys</c> a view in a schema of its own that counts every
/// row it reads: requests that arrive together (a busy client's dozens or hundreds in flight) ask once per key, not once
/// each, and a revocation is still seen within the cache's second.
/// </summary>
public sealed class ApiKeyLookupTests : IAsyncLifetime
{
    private readonly NpgsqlDataSource _db = NpgsqlDataSource.Create(TestPostgres.ConnectionString);
    private readonly string _schema = "t_" + Guid.NewGuid().ToString("N");
    private readonly (string Id, string Text, byte[] Salt, byte[] Hash) _key = KeyText.New();

    public async Task InitializeAsync()
    {
        await TestPostgres.ExecuteAsync(_db, $"""
            CREATE SCHEMA {_schema};
            CREATE SEQUENCE {_schema}.lookups;
            CREATE TABLE {_schema}.stored_keys (key_id text PRIMARY KEY, salt bytea, hash bytea, role text, volumes text[],
                read_only boolean, revoked_at timestamptz);
            CREATE VIEW {_schema}.api_keys AS SELECT k.* FROM {_schema}.stored_keys k, LATERAL (SELECT nextval('{_schema}.lookups')) n;
            """);
        await using var cmd = _db.CreateCommand($"INSERT INTO {_schema}.stored_keys VALUES (@id, @salt, @hash, 'producer', '{{vol}}', false, NULL)");
        cmd.Parameters.AddWithValue("id", _key.Id);
        cmd.Parameters.AddWithValue("salt", _key.Salt);
        cmd.Parameters.AddWithValue("hash", _key.Hash);
        await cmd.ExecuteNonQueryAsync();
    }

    public async Task DisposeAsync()
    {
        await TestPostgres.ExecuteAsync(_db, $"DROP SCHEMA {_schema} CASCADE");
        await _db.DisposeAsync();
    }

    private Task<long> LookupsAsync() =>
        TestPostgres.ScalarAsync(_db, $"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {_schema}.lookups");

    [Fact]
    public async Task two_hundred_requests_at_once_ask_once_per_key_and_again_together_once_the_cache_is_stale()
    {
        var lookup = new ApiKeyLookup(_db, _schema);
        var found = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => Task.Run(async () => await lookup.AuthenticateAsync(_key.Text, CancellationToken.None))));
        Assert.All(found, p => Assert.Equal(_key.Id, p?.KeyId));
        Assert.Equal(1L, await LookupsAsync());

        await Task.Delay(ApiKeyLookup.CacheFor + TimeSpan.FromMilliseconds(200));
        found = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => Task.Run(async () => await lookup.AuthenticateAsync(_key.Text, CancellationToken.None))));
        Assert.All(found, p => Assert.Equal(_key.Id, p?.KeyId));
        Assert.Equal(2L, await LookupsAsync());

        // A wrong secret for the key, a made-up key: no principal, for every one of the requests at once.
        var other = KeyText.New();
        var wrong = other.Text.Replace(other.Id, _key.Id, StringComparison.Ordinal);
        Assert.True(KeyText.TryParse(wrong, out var wrongId, out _) && wrongId == _key.Id);
        Assert.Null(await lookup.AuthenticateAsync(wrong, CancellationToken.None));
        var madeUp = KeyText.New().Text;
        var none = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => Task.Run(async () => await lookup.AuthenticateAsync(madeUp, CancellationToken.None))));
        Assert.All(none, Assert.Null);
    }

    [Fact]
    public async Task a_revoked_key_is_refused_once_the_cache_is_stale_and_a_forgotten_one_at_once()
    {
        var lookup = new ApiKeyLookup(_db, _schema);
        Assert.NotNull(await lookup.FindLiveAsync(_key.Id, CancellationToken.None));
        await TestPostgres.ExecuteAsync(_db, $"UPDATE {_schema}.stored_keys SET revoked_at = now() WHERE key_id = '{_key.Id}'");
        await Task.Delay(ApiKeyLookup.CacheFor + TimeSpan.FromMilliseconds(200));
        Assert.Null(await lookup.FindLiveAsync(_key.Id, CancellationToken.None));

        await TestPostgres.ExecuteAsync(_db, $"UPDATE {_schema}.stored_keys SET revoked_at = NULL WHERE key_id = '{_key.Id}'");
        lookup.Forget(_key.Id);
        Assert.NotNull(await lookup.FindLiveAsync(_key.Id, CancellationToken.None));
    }
}
