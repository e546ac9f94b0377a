using System.Diagnostics;

namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>Stops and starts the real RabbitMQ application the stack uses (the node stays up; every connection is cut).</summary>
internal static class Bus
{
    public static Task StopAsync() => RunAsync(Environment.GetEnvironmentVariable("TM_RABBIT_STOP") ?? "rabbitmqctl -q stop_app");

    public static Task StartAsync() => RunAsync(Environment.GetEnvironmentVariable("TM_RABBIT_START") ?? "rabbitmqctl -q start_app");

    private static async Task RunAsync(string command)
    {
        var start = new ProcessStartInfo("/bin/sh") { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        using var p = Process.Start(start)!;
        var stderr = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"'{command}' failed: {stderr}");
    }
}
