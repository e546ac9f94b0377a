using System.Net.Sockets;
using Npgsql;

namespace TaggedMirror.Hosting;

/// <summary>Errors that go away by themselves: PostgreSQL restarting, a dropped connection, contention.</summary>
public static class TransientErrors
{
    /// <summary>True for failures worth retrying: the server restarting, a dropped connection, contention.</summary>
    public static bool IsTransient(Exception ex) => ex switch
    {
        PostgresException pg => pg.IsTransient
            || pg.SqlState.StartsWith("57P", StringComparison.Ordinal) // admin/crash shutdown, cannot connect now
            || pg.SqlState.StartsWith("08", StringComparison.Ordinal) // connection exceptions
            || pg.SqlState is PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected
                or PostgresErrorCodes.TooManyConnections or PostgresErrorCodes.LockNotAvailable,

        // Everything Npgsql raises without a server error code is about the connection.
        NpgsqlException => true,
        SocketException or IOException or TimeoutException => true,
        _ => ex.InnerException is { } inner && IsTransient(inner),
    };
}
