using Npgsql;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Hosting.Access;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Controller.Access;

/// <summary>
/// The API keys, in the controller's table <c>api_keys</c>: created, listed, revoked, and looked up for every request
/// (<see cref="ApiKeyLookup"/>, a short cache: a key revoked on another controller is refused there within
/// <see cref="ApiKeyLookup.CacheFor"/>, on this one at once). Only a salted hash of each secret is stored (<see cref="KeyText"/>).
/// </summary>
internal sealed class ApiKeyStore(EventStreams store, ApiKeyLookup lookup, ILogger<ApiKeyStore> logger)
{

    public static string Ddl(string schema) => $"""
        -- API keys (issue #12): the id is public, the secret only as a salted SHA-256; revoked keys are kept, marked.
        CREATE TABLE IF NOT EXISTS {schema}.api_keys (
            key_id text PRIMARY KEY,
            salt bytea NOT NULL,
            hash bytea NOT NULL,
            role text NOT NULL,
            volumes text[] NOT NULL DEFAULT ARRAY[]::text[],
            read_only boolean NOT NULL DEFAULT false,
            description text,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz);
        """;

    internal sealed record StoredKey(
        string Id, byte[] Salt, byte[] Hash, string Role, string[] Volumes, bool ReadOnly, string? Description, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt)
    {
        public ApiKeyInfo Info => new(Id, Role, Volumes, ReadOnly, Description, CreatedAt, RevokedAt);
    }

    /// <summary>The principal a presented key stands for; null when it is not a key, unknown, wrong or revoked.</summary>
    public ValueTask<Principal?> AuthenticateAsync(string? presented, CancellationToken ct) => lookup.AuthenticateAsync(presented, ct);

    public async Task<IReadOnlyList<ApiKeyInfo>> ListAsync(CancellationToken ct) =>
        [.. (await SelectAsync("ORDER BY created_at, key_id", _ => { }, ct)).Select(k => k.Info)];

    /// <summary>Creates a key; its whole text is returned this once and never stored.</summary>
    public async Task<CreatedKey> CreateAsync(string role, string[] volumes, bool readOnly, string? description, CancellationToken ct)
    {
        await using var conn = await store.DataSource.OpenConnectionAsync(ct);
        return await InsertAsync(conn, null, role, volumes, readOnly, description, ct);
    }

    private async Task<CreatedKey> InsertAsync(
        NpgsqlConnection conn, NpgsqlTransaction? tx, string role, string[] volumes, bool readOnly, string? description, CancellationToken ct)
    {
        var (id, text, salt, hash) = KeyText.New();
        await using var cmd = new NpgsqlCommand($"""
            INSERT INTO {store.Schema}.api_keys (key_id, salt, hash, role, volumes, read_only, description)
            VALUES (@id, @salt, @hash, @role, @volumes, @readOnly, @description) RETURNING created_at
            """, conn, tx);
        cmd.Parameters.AddWithValue("id", id);
        cmd.Parameters.AddWithValue("salt", salt);
        cmd.Parameters.AddWithValue("hash", hash);
        cmd.Parameters.AddWithValue("role", role);
        cmd.Parameters.AddWithValue("volumes", volumes);
        cmd.Parameters.AddWithValue("readOnly", readOnly);
        cmd.Parameters.AddWithValue("description", (object?)description ?? DBNull.Value);
        var created = (DateTime)(await cmd.ExecuteScalarAsync(ct))!;
        logger.LogInformation("API key {KeyId} created: {Role} of {Volumes}{ReadOnly}", id, role,
            role == AccessRoles.Operator ? "every volume" : string.Join(",", volumes), readOnly ? ", read-only" : "");
        return new CreatedKey(text, new ApiKeyInfo(id, role, volumes, readOnly, description, new DateTimeOffset(created, TimeSpan.Zero), null));
    }

    /// <summary>Revokes a key: refused from now on (on other controllers within <see cref="ApiKeyLookup.CacheFor"/>). Null when there is no such key.</summary>
    public async Task<ApiKeyInfo?> RevokeAsync(string id, CancellationToken ct)
    {
        await using var conn = await store.DataSource.OpenConnectionAsync(ct);
        await using (var cmd = new NpgsqlCommand(
            $"UPDATE {store.Schema}.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = @id", conn))
        {
            cmd.Parameters.AddWithValue("id", id);
            if (await cmd.ExecuteNonQueryAsync(ct) == 0) return null;
        }
        lookup.Forget(id);
        logger.LogWarning("API key {KeyId} revoked", id);
        return (await SelectAsync("WHERE key_id = @id", c => c.Parameters.AddWithValue("id", id), ct)).Single().Info;
    }

    /// <summary>
    /// At start: makes sure the operator key file holds a live operator key of this cluster, creating one (and the
    /// file, readable by this user only) when it does not. Controllers starting together take turns (advisory lock),
    /// so on one host they share one key.
    /// </summary>
    public async Task EnsureOperatorKeyAsync(string path, CancellationToken ct)
    {
        await using var conn = await store.DataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", conn, tx))
        {
            lockCmd.Parameters.AddWithValue($"TaggedMirror.OperatorKey:{store.Schema}");
            await lockCmd.ExecuteNonQueryAsync(ct);
        }
        var existing = File.Exists(path) ? (await File.ReadAllTextAsync(path, ct)).Trim() : null;
        if (existing is not null && await AuthenticateAsync(existing, ct) is { IsOperator: true } holder)
        {
            logger.LogInformation("Operator key {KeyId} is in {Path}", holder.KeyId, path);
            return;
        }
        var created = await InsertAsync(conn, tx, AccessRoles.Operator, [], false, $"created at the first start, written to {path} on {Environment.MachineName}", ct);
        WritePrivate(path, created.Key + "\n");
        await tx.CommitAsync(ct);
        lookup.Forget();
        logger.LogWarning("Operator key {KeyId} created and written to {Path} (readable by this user only){Why}", created.Info.Id, path,
            existing is null ? "" : ": the key the file held is not a live operator key of this cluster");
    }

    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/> with mode 0600 (directory 0700), replacing it whole.</summary>
    internal static void WritePrivate(string path, string text)
    {
        if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("the controller runs on Linux (file modes)");
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(directory))
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var temp = path + ".tmp-" + Environment.ProcessId;
        using (var file = new FileStream(temp, new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        {
            file.Write(System.Text.Encoding.ASCII.GetBytes(text));
            file.Flush(flushToDisk: true);
        }
        File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);   // an older file of that name kept its mode
        File.Move(temp, path, overwrite: true);
    }

    private async Task<List<StoredKey>> SelectAsync(string where, Action<NpgsqlCommand> bind, CancellationToken ct)
    {
        await using var conn = await store.DataSource.OpenConnectionAsync(ct);
        await using var cmd = new NpgsqlCommand(
            $"SELECT key_id, salt, hash, role, volumes, read_only, description, created_at, revoked_at FROM {store.Schema}.api_keys {where}", conn);
        bind(cmd);
        var keys = new List<StoredKey>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            keys.Add(new StoredKey(r.GetString(0), (byte[])r[1], (byte[])r[2], r.GetString(3), (string[])r[4], r.GetBoolean(5),
                r.IsDBNull(6) ? null : r.GetString(6), new DateTimeOffset(r.GetDateTime(7), TimeSpan.Zero),
                r.IsDBNull(8) ? null : new DateTimeOffset(r.GetDateTime(8), TimeSpan.Zero)));
        }
        return keys;
    }
}
