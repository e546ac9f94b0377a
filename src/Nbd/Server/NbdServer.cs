using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace TaggedMirror.Nbd.Server;

/// <summary>
/// An NBD server (fixed newstyle; spec NetworkBlockDevice/nbd doc/proto.md) for whatever <see cref="INbdExports"/>
/// offers: accepts connections, runs each one's handshake and then its transmission, and keeps one client's
/// protocol errors to that client's connection (logged with its address).
/// </summary>
public sealed class NbdServer
{
    private readonly INbdExports _exports;
    private readonly NbdServerOptions _options;
    private readonly ILogger _logger;

    // Refused connections are logged at most ten a second: a client that connects in a loop must not flood the log.
    private readonly LogBudget _refusals = new(10, TimeProvider.System);

    public NbdServer(INbdExports exports, NbdServerOptions options, ILogger<NbdServer> logger)
    {
        ArgumentNullException.ThrowIfNull(exports);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        options.Validate();
        _exports = exports;
        _options = options;
        _logger = logger;
    }

    /// <summary>A listening socket on <paramref name="endpoint"/> (port 0: any free port, see <see cref="Socket.LocalEndPoint"/>).</summary>
    public static Socket Listen(IPEndPoint endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(endpoint);
            socket.Listen(128);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Accepts and serves connections on <paramref name="listener"/> until <paramref name="ct"/>; then lets the open ones finish their requests.</summary>
    public Task RunAsync(Socket listener, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(listener);
        return RunAsync(listener.AcceptAsync, ct);
    }

    /// <summary>
    /// The first pause after a failed accept, and the longest: a failure that persists (the process out of file
    /// descriptors, the kernel out of buffers) is tried again at most once a second instead of spinning a core,
    /// as Go's and nginx's accept loops do; the pause doubles from the first to the longest and is reset by an accept
    /// that succeeds. A peer that reset its connection before it was accepted is no failure of the server's: the
    /// next accept follows at once.
    /// </summary>
    internal static readonly TimeSpan FirstAcceptPause = TimeSpan.FromMilliseconds(5), LongestAcceptPause = TimeSpan.FromSeconds(1);

    /// <summary><see cref="RunAsync(Socket, CancellationToken)"/> with the accept call given (tests make it fail).</summary>
    internal async Task RunAsync(Func<CancellationToken, ValueTask<Socket>> accept, CancellationToken ct)
    {
        var connections = new HashSet<Task>();
        var pause = TimeSpan.Zero;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                Socket client;
                try
                {
                    client = await accept(ct).ConfigureAwait(false);
                    pause = TimeSpan.Zero;
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                catch (SocketException ex)
                {
                    var peersOwn = ex.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset;
                    if (!peersOwn) pause = pause == TimeSpan.Zero ? FirstAcceptPause : TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, LongestAcceptPause.Ticks));
                    NbdTelemetry.AcceptFailures.Add(1);
                    if (_refusals.TryTake(out var held))
                    {
                        _logger.LogWarning("NBD: accepting a connection failed ({Error}): {Reason}{Pause}{Held}", ex.SocketErrorCode, ex.Message,
                            peersOwn ? "" : $"; the next try in {pause.TotalMilliseconds:0} ms", Held(held));
                    }
                    if (peersOwn) continue;
                    try
                    {
                        await Task.Delay(pause, ct).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                    continue;
                }
                int open;
                lock (connections) open = connections.Count;
                if (open >= _options.MaxConnections)
                {
                    NbdTelemetry.OverLimit.Add(1);
                    if (_refusals.TryTake(out var held))
                    {
                        _logger.LogWarning("NBD {Peer}: closed at once: {Open} connections are served already, the most at once (MaxConnections){Held}",
                            client.RemoteEndPoint?.ToString() ?? "unknown peer", open, Held(held));
                    }
                    client.Dispose();
                    continue;
                }
                var task = Task.Run(() => ServeAsync(client, ct), CancellationToken.None);
                lock (connections) connections.Add(task);
                _ = task.ContinueWith(t => { lock (connections) connections.Remove(t); }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }
        finally
        {
            Task[] open;
            lock (connections) open = [.. connections];
            await Task.WhenAll(open).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>Serves one connection to its end; never throws.</summary>
    public async Task ServeAsync(Socket client, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(client);
        var peer = client.RemoteEndPoint?.ToString() ?? "unknown peer";
        System.Net.Security.SslStream? closeTls = null;
        NbdTelemetry.Connections.Add(1);
        try
        {
            client.NoDelay = true;   // the spec's SHOULD: replies are small and latency is the point
            client.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
            var network = new NetworkStream(client, ownsSocket: true);
            await using var closeNetwork = network.ConfigureAwait(false);
            // Reads go through a buffer (request headers are 28 bytes); writes go straight out, one reply at a time.
            var input = new BufferedStream(network, 128 * 1024);
            await using var closeInput = input.ConfigureAwait(false);

            NbdSession? session;
            var negotiation = new NbdHandshake(input, network, _exports, _options, (client.RemoteEndPoint as System.Net.IPEndPoint)?.Address.ToString() ?? peer);
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                handshake.CancelAfter(_options.HandshakeTimeout);
                try
                {
                    session = await negotiation.NegotiateAsync(handshake.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    throw new NbdProtocolException($"no export chosen within {_options.HandshakeTimeout.TotalSeconds:0} s");
                }
                finally
                {
                    // The TLS stream, when the client upgraded, goes with the connection.
                    if (negotiation.Tls is { } upgraded) closeTls = upgraded;
                }
            }
            if (session is null) return;
            _logger.LogInformation("NBD {Peer}: export {Export} ({Size} bytes, {Replies} replies{Tls})", peer, session.Export.Name, session.Export.Size,
                session.Structured ? "structured" : "simple", negotiation.Tls is { } t ? $", {t.SslProtocol}" : ", no TLS");
            await new NbdTransmission(negotiation.Input, negotiation.Output, session, _options, peer, _logger).RunAsync(ct).ConfigureAwait(false);
            _logger.LogInformation("NBD {Peer}: export {Export} disconnected", peer, session.Export.Name);
        }
        catch (NbdProtocolException ex)
        {
            NbdTelemetry.Refused.Add(1);
            if (_refusals.TryTake(out var held))
                _logger.LogWarning("NBD {Peer}: {Reason}; connection closed, nothing else done{Held}", peer, ex.Message, Held(held));
        }
        catch (EndOfStreamException)
        {
            NbdTelemetry.Refused.Add(1);
            if (_refusals.TryTake(out var held))
                _logger.LogWarning("NBD {Peer}: the connection ended in the middle of a message; connection closed, nothing else done{Held}", peer, Held(held));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The server stops.
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            _logger.LogInformation("NBD {Peer}: connection lost: {Reason}", peer, ex.Message);
        }
        catch (Exception ex)
        {
            _logger.LogError(ex, "NBD {Peer}: connection failed", peer);
        }
        finally
        {
            NbdTelemetry.Connections.Add(-1);
            if (closeTls is not null) await closeTls.DisposeAsync().ConfigureAwait(false);
            client.Dispose();
        }
    }

    private static string Held(long held) => held > 0 ? $" ({held} more refused since the last one logged)" : "";
}
