namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>Restarts, stops and starts the real PostgreSQL server the stack uses (fast shutdown: every connection is cut).</summary>
internal static class PostgresServer
{
    public static Task RestartAsync() =>
        RunAsync(Environment.GetEnvironmentVariable("TM_PG_RESTART") ?? "pg_ctlcluster 15 main restart -m fast");

    /// <summary>Stops the server until <see cref="StartAsync"/>: the stack runs without its database meanwhile.</summary>
    public static Task StopAsync() =>
        RunAsync(Environment.GetEnvironmentVariable("TM_PG_STOP") ?? "pg_ctlcluster 15 main stop -m fast");

    public static Task StartAsync() =>
        RunAsync(Environment.GetEnvironmentVariable("TM_PG_START") ?? "pg_ctlcluster 15 main start");

    private static async Task RunAsync(string command)
    {
        await Shell.RunAsync(command);
        // Connections pooled before are dead; the test's own pool starts afresh.
        Npgsql.NpgsqlConnection.ClearAllPools();
    }
}
