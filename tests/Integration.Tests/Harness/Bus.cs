namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>Stops and starts the real RabbitMQ application the stack uses (the node stays up; every connection is cut).</summary>
internal static class Bus
{
    public static Task StopAsync() => Shell.RunAsync(Environment.GetEnvironmentVariable("TM_RABBIT_STOP") ?? "rabbitmqctl -q stop_app");

    public static Task StartAsync() => Shell.RunAsync(Environment.GetEnvironmentVariable("TM_RABBIT_START") ?? "rabbitmqctl -q start_app");
}
