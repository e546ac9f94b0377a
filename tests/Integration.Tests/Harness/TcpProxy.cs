using System.Net;
using System.Net.Sockets;

namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>
/// A TCP relay between one process and a server (RabbitMQ, for one agent): <see cref="Block"/> cuts every
/// connection through it and refuses new ones, so that process alone loses the server while the rest of the
/// machine (other tests, other engineers' runs) keeps it.
/// </summary>
internal sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly string _targetHost;
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();
    private readonly List<TcpClient> _open = [];
    private readonly Task _accepting;
    private volatile bool _blocked;

    public TcpProxy(string targetHost, int targetPort)
    {
        _targetHost = targetHost;
        _targetPort = targetPort;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    /// <summary>A relay to the RabbitMQ the processes would use by default (<c>TaggedMirror__RabbitMqHost</c>/<c>Port</c>).</summary>
    public static TcpProxy ToRabbitMq() => new(
        System.Environment.GetEnvironmentVariable("TaggedMirror__RabbitMqHost") ?? "127.0.0.1",
        int.Parse(System.Environment.GetEnvironmentVariable("TaggedMirror__RabbitMqPort") ?? "5672", System.Globalization.CultureInfo.InvariantCulture));

    public int Port { get; }

    /// <summary>Cuts every relayed connection; new ones are closed as soon as they arrive.</summary>
    public void Block()
    {
        _blocked = true;
        lock (_lock)
        {
            foreach (var c in _open) c.Dispose();
            _open.Clear();
        }
    }

    public void Unblock() => _blocked = false;

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            if (_blocked)
            {
                client.Dispose();
                continue;
            }
            _ = RelayAsync(client);
        }
    }

    private async Task RelayAsync(TcpClient client)
    {
        var server = new TcpClient();
        try
        {
            await server.ConnectAsync(_targetHost, _targetPort, _stop.Token);
            lock (_lock)
            {
                _open.Add(client);
                _open.Add(server);
            }
            using var done = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            var up = client.GetStream().CopyToAsync(server.GetStream(), done.Token);
            var down = server.GetStream().CopyToAsync(client.GetStream(), done.Token);
            await Task.WhenAny(up, down);
            await done.CancelAsync();
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
        finally
        {
            lock (_lock)
            {
                _open.Remove(client);
                _open.Remove(server);
            }
            client.Dispose();
            server.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        Block();
        await _accepting;
        _stop.Dispose();
    }
}
