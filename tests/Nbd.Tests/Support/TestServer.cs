using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using TaggedMirror.Nbd.Server;

namespace TaggedMirror.Nbd.Tests.Support;

/// <summary>An <see cref="NbdServer"/> on a free loopback port, serving in-memory exports until disposed.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _run;

    public TestServer(NbdServerOptions? options = null, params MemoryExport[] exports)
    {
        Exports = exports;
        _listener = NbdServer.Listen(new IPEndPoint(IPAddress.Loopback, 0));
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        Served = new MemoryExports(exports);
        var server = new NbdServer(Served, options ?? new NbdServerOptions(), NullLogger<NbdServer>.Instance);
        _run = server.RunAsync(_listener, _stop.Token);
    }

    public IReadOnlyList<MemoryExport> Exports { get; }

    /// <summary>The exports as the server sees them (and the clients they were opened for).</summary>
    public MemoryExports Served { get; }

    public int Port { get; }

    public string Uri(string export) => $"nbd://127.0.0.1:{Port}/{export}";

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        await _run.WaitAsync(TimeSpan.FromSeconds(30));
        _stop.Dispose();
    }
}
