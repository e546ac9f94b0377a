using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using TaggedMirror.Nbd.Protocol;
using TaggedMirror.Nbd.Server;
using TaggedMirror.Nbd.Tests.Support;

namespace TaggedMirror.Nbd.Tests;

/// <summary>
/// What the server does when accepting a connection fails: a failure that persists (the process out of file
/// descriptors) is tried again after pauses that double up to a second, never in a loop that spins a core; a peer
/// that reset its connection before it was accepted costs no pause; and once accepting works again, clients are
/// served as before.
/// </summary>
public sealed class AcceptFailureTests
{
    [Fact]
    public async Task a_failure_that_persists_is_tried_again_after_pauses_and_clients_are_served_once_it_ends()
    {
        using var listener = NbdServer.Listen(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        var failing = true;
        var calls = 0;
        ValueTask<Socket> Accept(CancellationToken ct)
        {
            Interlocked.Increment(ref calls);
            return Volatile.Read(ref failing) ? throw new SocketException((int)SocketError.TooManyOpenSockets) : listener.AcceptAsync(ct);
        }

        using var stop = new CancellationTokenSource();
        var server = new NbdServer(new MemoryExports(new MemoryExport("disk", 1024 * 1024)), new NbdServerOptions(), NullLogger<NbdServer>.Instance);
        var run = Task.Run(() => server.RunAsync(Accept, stop.Token));   // a loop that never pauses must not hold the test's thread

        // In 1.5 s, pauses of 5, 10, 20 … 640 ms allow ten tries at most (a loop without them makes millions).
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        var tried = Volatile.Read(ref calls);
        Assert.InRange(tried, 2, 10);

        // Accepting works again: the client waiting in the backlog is served after the next pause (a second at most).
        Volatile.Write(ref failing, false);
        var connect = RawClient.OpenAsync(port, "disk");
        await using (var client = await connect.WaitAsync(TimeSpan.FromSeconds(20)))
        {
            await client.SendRequestAsync(NbdCommand.Read, 1, 0, 512);
            Assert.Equal(NbdError.None, (await client.ReadReplyAsync()).Error);
        }

        await stop.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task a_peer_that_reset_before_it_was_accepted_costs_no_pause()
    {
        using var listener = NbdServer.Listen(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        var resets = 0;
        ValueTask<Socket> Accept(CancellationToken ct) =>
            Interlocked.Increment(ref resets) <= 200 ? throw new SocketException((int)SocketError.ConnectionAborted) : listener.AcceptAsync(ct);

        using var stop = new CancellationTokenSource();
        var server = new NbdServer(new MemoryExports(new MemoryExport("disk", 1024 * 1024)), new NbdServerOptions(), NullLogger<NbdServer>.Instance);
        var run = Task.Run(() => server.RunAsync(Accept, stop.Token));   // a loop that never pauses must not hold the test's thread

        // Two hundred aborted accepts paused as failures would take over three minutes; they take none.
        await using (var client = await RawClient.OpenAsync(port, "disk").WaitAsync(TimeSpan.FromSeconds(20)))
        {
            await client.SendRequestAsync(NbdCommand.Read, 1, 0, 512);
            Assert.Equal(NbdError.None, (await client.ReadReplyAsync()).Error);
        }

        await stop.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
