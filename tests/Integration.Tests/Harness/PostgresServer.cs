using System.Diagnostics;

namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>Restarts the real PostgreSQL server the stack uses (fast shutdown: every connection is cut).</summary>
internal static class PostgresServer
{
    public static async Task RestartAsync()
    {
        var command = Environment.GetEnvironmentVariable("TM_PG_RESTART") ?? "pg_ctlcluster 15 main restart -m fast";
        var start = new ProcessStartInfo("/bin/sh") { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        using var p = Process.Start(start)!;
        var stderr = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"'{command}' failed: {stderr}");
        // Connections pooled before the restart are dead; the test's own pool starts afresh.
        Npgsql.NpgsqlConnection.ClearAllPools();
    }
}
