using System.Diagnostics;
using System.Globalization;
using RabbitMQ.Client;

namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>The real RabbitMQ the stack uses: stopping and starting it, and removing what one test cluster declared.</summary>
internal static class Bus
{
    public static Task StopAsync() => Shell.RunAsync(Environment.GetEnvironmentVariable("TM_RABBIT_STOP") ?? "rabbitmqctl -q stop_app");

    /// <summary>
    /// Starts the broker's application again and returns once its AMQP listener accepts connections. Every test
    /// after a stopped bus needs it back, so a failed <c>start_app</c> (a stop still finishing, a slow boot) is tried
    /// again for two minutes, and a node that is gone altogether is started by the project's setup script.
    /// </summary>
    public static async Task StartAsync()
    {
        var command = Environment.GetEnvironmentVariable("TM_RABBIT_START") ?? "rabbitmqctl -q start_app";
        var deadline = DateTime.UtcNow.AddMinutes(2);
        var failures = new List<string>();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await Shell.RunAsync(command);
            }
            catch (Xunit.Sdk.XunitException ex)
            {
                failures.Add(ex.Message);
                // The node itself is down (start_app cannot reach it): the setup script starts it as CI does.
                if (attempt == 3) await Shell.RunAsync(Path.Combine(Paths.RepositoryRoot, "ops", "setup.sh") + " >/dev/null");
            }
            if (await ListeningAsync()) return;
            if (DateTime.UtcNow > deadline)
                throw new InvalidOperationException($"RabbitMQ did not start again in two minutes: {string.Join(" | ", failures)}");
            await Task.Delay(TimeSpan.FromSeconds(2));
        }
    }

    private static async Task<bool> ListeningAsync()
    {
        using var client = new System.Net.Sockets.TcpClient();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await client.ConnectAsync(Environment.GetEnvironmentVariable("TaggedMirror__RabbitMqHost") ?? "127.0.0.1",
                int.Parse(Environment.GetEnvironmentVariable("TaggedMirror__RabbitMqPort") ?? "5672", CultureInfo.InvariantCulture), timeout.Token);
            return true;
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>
    /// Every queue and exchange named <c>tm.&lt;cluster&gt;.…</c> (the product's per-cluster prefix). The product
    /// declares its queues durable, so they outlive the processes; test clusters come and go by the hundred.
    /// </summary>
    public static async Task<(List<string> Queues, List<string> Exchanges)> ListAsync(string cluster)
    {
        var prefix = $"tm.{cluster}.";
        var queues = await ListNamesAsync(Environment.GetEnvironmentVariable("TM_RABBIT_LIST_QUEUES") ?? "rabbitmqctl -q list_queues name --no-table-headers");
        var exchanges = await ListNamesAsync(Environment.GetEnvironmentVariable("TM_RABBIT_LIST_EXCHANGES") ?? "rabbitmqctl -q list_exchanges name --no-table-headers");
        return ([.. queues.Where(n => n.StartsWith(prefix, StringComparison.Ordinal))],
            [.. exchanges.Where(n => n.StartsWith(prefix, StringComparison.Ordinal))]);
    }

    /// <summary>
    /// Deletes the cluster's queues and exchanges (see <see cref="ListAsync"/>), once its processes are gone.
    /// Without this a shared broker collected thousands of queues, more than its file-handle limit, and
    /// <c>rabbitmqctl start_app</c> hung.
    /// </summary>
    public static async Task DeleteClusterAsync(string cluster)
    {
        var (queues, exchanges) = await ListAsync(cluster);
        if (queues.Count == 0 && exchanges.Count == 0) return;
        var factory = new ConnectionFactory
        {
            HostName = Environment.GetEnvironmentVariable("TaggedMirror__RabbitMqHost") ?? "127.0.0.1",
            Port = int.Parse(Environment.GetEnvironmentVariable("TaggedMirror__RabbitMqPort") ?? "5672", CultureInfo.InvariantCulture),
            VirtualHost = Environment.GetEnvironmentVariable("TaggedMirror__RabbitMqVirtualHost") ?? "/",
            UserName = Environment.GetEnvironmentVariable("TaggedMirror__RabbitMqUser") ?? "guest",
            Password = Environment.GetEnvironmentVariable("TaggedMirror__RabbitMqPassword") ?? "guest",
        };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        // Deleting what is already gone succeeds, so a queue that expired meanwhile is no error.
        foreach (var q in queues) await channel.QueueDeleteAsync(q, ifUnused: false, ifEmpty: false);
        foreach (var e in exchanges) await channel.ExchangeDeleteAsync(e, ifUnused: false);
    }

    private static async Task<List<string>> ListNamesAsync(string command)
    {
        var start = new ProcessStartInfo("/bin/sh") { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"'{command}' failed: {await stderr}");
        return [.. (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
    }
}
