using System.Globalization;
using System.Runtime.InteropServices;

namespace TaggedMirror.DevKafka;

/// <summary>
/// The devkafka process: hosts a <see cref="MockKafkaCluster"/> until SIGTERM or SIGINT, publishes
/// its bootstrap servers in a file (the readiness signal) and serves the fault-injection channel.
/// It never reads stdin, so it runs detached.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var options = DevKafkaOptions.Parse(args, out var error);
        if (options is null)
        {
            if (!string.IsNullOrEmpty(error))
            {
                await Console.Error.WriteLineAsync("devkafka: " + error);
            }

            await Console.Error.WriteLineAsync(DevKafkaOptions.Usage);
            return string.IsNullOrEmpty(error) ? 0 : 2;
        }

        using var stop = new CancellationTokenSource();
        void OnSignal(PosixSignalContext context)
        {
            // Handle the signal ourselves so the files are removed before the process ends.
            context.Cancel = true;
            stop.Cancel();
        }

        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);

        var bootstrapFile = Path.GetFullPath(options.BootstrapFile);
        var controlFile = MockKafkaControlClient.ControlFilePath(bootstrapFile);
        using var cluster = MockKafkaCluster.Start(options.Brokers);
        try
        {
            foreach (var (name, partitions) in options.Topics)
            {
                cluster.CreateTopic(name, partitions, Math.Min(3, options.Brokers));
            }

            await using var control = ControlServer.Start(cluster, options.ControlPort);

            // The control file goes first: whoever sees the bootstrap file may use both.
            WriteAtomically(controlFile, control.Port.ToString(CultureInfo.InvariantCulture));
            WriteAtomically(bootstrapFile, cluster.BootstrapServers);
            await Console.Out.WriteLineAsync(cluster.BootstrapServers);
            await Console.Out.WriteLineAsync(
                $"devkafka: {options.Brokers} brokers, bootstrap file {bootstrapFile}, control port {control.Port}, pid {Environment.ProcessId}");

            try
            {
                await Task.Delay(Timeout.Infinite, stop.Token);
            }
            catch (OperationCanceledException)
            {
                await Console.Out.WriteLineAsync("devkafka: stopping");
            }
        }
        catch (Exception ex) when (ex is MockKafkaException or System.Net.Sockets.SocketException or IOException)
        {
            await Console.Error.WriteLineAsync("devkafka: " + ex.Message);
            return 1;
        }
        finally
        {
            File.Delete(bootstrapFile);
            File.Delete(controlFile);
        }

        return 0;
    }

    // Readers poll for the file: they must never see it half written.
    private static void WriteAtomically(string path, string content)
    {
        var directory = Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        var temporary = $"{path}.{Environment.ProcessId}.tmp";
        File.WriteAllText(temporary, content + "\n");
        File.Move(temporary, path, overwrite: true);
    }
}
