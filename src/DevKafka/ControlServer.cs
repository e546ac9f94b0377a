using System.Net;
using System.Net.Sockets;
using System.Text;

namespace TaggedMirror.DevKafka;

/// <summary>
/// Loopback TCP listener for <see cref="ControlCommands"/>, so a test harness or an operator in
/// another process can inject faults into the mock cluster.
/// </summary>
internal sealed class ControlServer : IAsyncDisposable
{
    // A command is a few words; anything longer is garbage and must not grow memory.
    private const int MaxLineLength = 1024;

    private readonly MockKafkaCluster _cluster;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _acceptLoop;
    private readonly Lock _connectionsGate = new();
    private readonly HashSet<Task> _connections = [];

    private ControlServer(MockKafkaCluster cluster, TcpListener listener)
    {
        _cluster = cluster;
        _listener = listener;
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    internal int Port { get; }

    internal static ControlServer Start(MockKafkaCluster cluster, int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        return new ControlServer(cluster, listener);
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Stop();
        await _acceptLoop;
        Task[] open;
        lock (_connectionsGate)
        {
            open = [.. _connections];
        }

        await Task.WhenAll(open);
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stopping.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException && _stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException ex)
            {
                await Console.Error.WriteLineAsync($"devkafka: control accept failed: {ex.Message}");
                continue;
            }

            var connection = ServeAsync(client);
            lock (_connectionsGate)
            {
                _connections.Add(connection);
            }

            _ = connection.ContinueWith(
                done =>
                {
                    lock (_connectionsGate)
                    {
                        _connections.Remove(done);
                    }
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        await Task.Yield();
        try
        {
            using (client)
            {
                var stream = client.GetStream();
                var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
                await using (writer)
                {
                    var buffer = new byte[MaxLineLength + 1];
                    var filled = 0;
                    while (true)
                    {
                        var read = await stream.ReadAsync(buffer.AsMemory(filled), _stopping.Token);
                        if (read == 0)
                        {
                            return;
                        }

                        filled += read;
                        int newline;
                        while ((newline = Array.IndexOf(buffer, (byte)'\n', 0, filled)) >= 0)
                        {
                            var line = Encoding.UTF8.GetString(buffer, 0, newline).TrimEnd('\r');
                            var answer = ControlCommands.Execute(_cluster, line);
                            await Console.Out.WriteLineAsync($"devkafka: control '{line}' -> {answer}");
                            await writer.WriteLineAsync(answer.AsMemory(), _stopping.Token);
                            filled -= newline + 1;
                            Buffer.BlockCopy(buffer, newline + 1, buffer, 0, filled);
                        }

                        if (filled == buffer.Length)
                        {
                            await writer.WriteLineAsync($"error line longer than {MaxLineLength} bytes".AsMemory(), _stopping.Token);
                            return;
                        }
                    }
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            // The peer went away or devkafka is stopping; a control connection is never worth a crash.
        }
    }
}
