using Npgsql;

namespace TaggedMirror.Controller.Tagging;

/// <summary>
/// One live process per controller id. A PostgreSQL session-level advisory lock, held on a connection of its
/// own for the life of the process: a second process started with an id that is live is refused at start (two
/// processes with one id would share tags' controller part and take each other's leases), and a crashed
/// process's lock goes with its connection, so a restart after a crash is not held up. If the connection
/// breaks (PostgreSQL restarted) the lock is taken again; if another process took it meanwhile, this one stops.
/// </summary>
internal sealed class ControllerIdentity(NpgsqlDataSource dataSource, string schema, int controllerId) : IAsyncDisposable
{
    private NpgsqlConnection? _connection;

    public int ControllerId { get; } = controllerId;

    /// <summary>Takes the id, waiting up to <paramref name="wait"/> for a process that just died to let go of it.</summary>
    public async Task AcquireAsync(TimeSpan wait, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + wait;
        while (!await TryAcquireAsync(ct))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new ControllerIdInUseException(
                    $"controller id {ControllerId} is live in another process (schema {schema}); refusing to start a second one. " +
                    "Give each controller its own Controller__Id.");
            }

            await Task.Delay(200, ct);
        }
    }

    /// <summary>True while the lock is held; re-takes it after a lost connection. False: another process has the id now.</summary>
    public async Task<bool> StillHeldAsync(CancellationToken ct)
    {
        try
        {
            if (_connection is { State: System.Data.ConnectionState.Open })
            {
                await using var ping = new NpgsqlCommand("SELECT 1", _connection);
                await ping.ExecuteScalarAsync(ct);
                return true;
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or IOException)
        {
            // The connection and with it the lock are gone: take it again below.
        }
        return await TryAcquireAsync(ct);
    }

    private async Task<bool> TryAcquireAsync(CancellationToken ct)
    {
        if (_connection is not null) await _connection.DisposeAsync();
        _connection = await dataSource.OpenConnectionAsync(ct);
        await using var cmd = new NpgsqlCommand("SELECT pg_try_advisory_lock(hashtext(@s), @c)", _connection);
        cmd.Parameters.AddWithValue("s", "taggedmirror.controller." + schema);
        cmd.Parameters.AddWithValue("c", ControllerId);
        if ((bool)(await cmd.ExecuteScalarAsync(ct))!) return true;
        await _connection.DisposeAsync();
        _connection = null;
        return false;
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null) await _connection.DisposeAsync();
    }
}

/// <summary>Another live process has this controller id.</summary>
internal sealed class ControllerIdInUseException(string message) : Exception(message);
