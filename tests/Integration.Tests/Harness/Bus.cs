using System.Diagnostics;
using System.Globalization;
using RabbitMQ.Client;

namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>The real RabbitMQ the stack uses: stopping and starting it, and removing what one test cluster declared.</summary>
internal static class Bus
{
    public static Task StopAsync() => Shell.RunAsync(Environment.GetEnvironmentVariable("TM_RABBIT_STOP") ?? "rabbitmqctl -q stop_app");

    public static Task StartAsync() => Shell.RunAsync(Environment.GetEnvironmentVariable("TM_RABBIT_START") ?? "rabbitmqctl -q start_app");

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
