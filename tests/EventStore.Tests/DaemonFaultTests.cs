using Npgsql;
using TaggedMirror.EventStore;

namespace TaggedMirror.EventStore.Tests;

public sealed class DaemonFaultTests : PgTestBase
{
    [Fact]
    public async Task run_async_survives_its_connections_being_killed_with_admin_shutdown_and_loses_nothing()
    {
        // The daemon gets its own data source, tagged by application name, so only its backends are terminated
        // (57P01, what a PostgreSQL restart looks like to a client) without disturbing other tests.
        var applicationName = "daemon_" + Schema;
        var builder = new NpgsqlConnectionStringBuilder(ConnectionString) { ApplicationName = applicationName };
        await using var daemonSource = NpgsqlDataSource.Create(builder);
        var daemonStore = new PgEventStore(daemonSource, Schema);
        var projection = new CountingProjection();
        var log = new CollectingLogger<ProjectionDaemon>();
        var daemon = new ProjectionDaemon(
            daemonStore,
            projection,
            new ProjectionDaemonOptions { PollInterval = TimeSpan.FromMilliseconds(10), BatchSize = 7, MinRetryDelay = TimeSpan.FromMilliseconds(10), MaxRetryDelay = TimeSpan.FromMilliseconds(80) },
            log);
        await daemonStore.MigrateAsync(Ct); // creates the registered projection's tables
        using var run = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var running = daemon.RunAsync(run.Token);

        var killed = 0L;
        var writing = Task.Run(
            async () =>
            {
                for (var i = 0; i < 60; i++)
                {
                    await Store.AppendAsync($"s-{i % 5}", ExpectedVersion.Any, [Json("E", new { i }), Json("E", new { i })], Ct);
                    await Task.Delay(10, Ct);
                }
            },
            Ct);
        while (!writing.IsCompleted)
        {
            killed += await ScalarAsync<long>(
                $"SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{applicationName}'");
            await Task.Delay(25, Ct);
        }

        await writing;

        var expected = await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.events");
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (await ScalarAsync<long>($"SELECT count(*) FROM {Schema}.seen") < expected && DateTime.UtcNow < deadline)
        {
            await Task.Delay(25, Ct);
        }

        await run.CancelAsync();
        await running; // RunAsync never threw

        Assert.True(killed > 0, "no daemon backend was terminated");
        Assert.Contains(log.Entries, e => e.StartsWith("Warning", StringComparison.Ordinal) && e.Contains("transient", StringComparison.Ordinal));
        Assert.Equal(120, expected);
        Assert.Equal(0, await ScalarAsync<long>(
            $"SELECT count(*) FROM {Schema}.events e FULL JOIN {Schema}.seen s USING (seq) WHERE e.seq IS NULL OR s.seq IS NULL OR s.times <> 1"));
    }
}
