using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using TaggedMirror.Nbd.Protocol;

namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>
/// Relays NBD connections to a server and, when the server's side of a connection ends (a controller killed), answers
/// every request still waiting, and every one that follows, with <c>EIO</c>: what a client of a server that lost its
/// storage is told. Needed because fio's nbd engine (3.33, libnbd 1.14) spins for ever on a connection that died
/// ("nothing to poll for in state DEAD") instead of failing its I/O; told <c>EIO</c>, it stops and saves its verify
/// state (which writes completed), and a later <c>--verify_only --verify_state_load=1</c> checks exactly those.
/// <para>
/// The relay follows the protocol only as far as it must: the handshake up to the client's GO (assumed accepted)
/// and the server's ACK of it, then requests (28-byte headers, WRITE payloads) and replies (simple and structured),
/// to know which cookies are still unanswered.
/// </para>
/// </summary>
internal sealed class NbdAnsweringProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    public NbdAnsweringProxy(int targetPort)
    {
        _targetPort = targetPort;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    /// <summary>Requests answered <c>EIO</c> by the relay (never seen answered by the server).</summary>
    public int Answered => Volatile.Read(ref _answered);

    private int _answered;

    /// <summary>
    /// Offsets of the requests the server never answered: those it had not answered when it went away, and those the
    /// client sent after (answered <c>EIO</c> here, never sent; a loaded machine lets fio submit a few more before it
    /// reads the first <c>EIO</c>).
    /// </summary>
    public IReadOnlyCollection<ulong> Unanswered => _unanswered;

    private readonly ConcurrentBag<ulong> _unanswered = [];

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
            _ = new Relay(this, client).RunAsync(_targetPort, _stop.Token);
        }
    }

    private sealed class Relay(NbdAnsweringProxy proxy, TcpClient client)
    {
        private readonly SemaphoreSlim _toClient = new(1, 1);
        private readonly ConcurrentDictionary<ulong, (NbdCommand Command, uint Length, ulong Offset)> _waiting = new();
        private readonly Lock _lock = new();
        private bool _serverGone;
        private bool _structured;

        public async Task RunAsync(int port, CancellationToken ct)
        {
            using var server = new TcpClient();
            try
            {
                await server.ConnectAsync(IPAddress.Loopback, port, ct);
                var up = UpAsync(client.GetStream(), server.GetStream(), ct);
                try
                {
                    await DownAsync(server.GetStream(), client.GetStream(), ct);
                }
                catch (Exception ex) when (ex is IOException or EndOfStreamException or SocketException)
                {
                }
                await ServerGoneAsync();
                await up;
            }
            catch (Exception ex) when (ex is IOException or EndOfStreamException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
            finally
            {
                client.Dispose();
            }
        }

        /// <summary>Client to server: the handshake's options, then requests; after the server is gone, requests are answered here.</summary>
        private async Task UpAsync(NetworkStream from, NetworkStream to, CancellationToken ct)
        {
            await ForwardAsync(from, to, 4, ct);   // client flags
            while (true)
            {
                var header = await ReadAsync(from, NbdWire.OptionHeaderSize, ct);
                var option = (NbdOption)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8));
                var data = await ReadAsync(from, (int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)), ct);
                await to.WriteAsync(header.Concat(data).ToArray(), ct);
                if (option == NbdOption.StructuredReply) _structured = true;
                if (option == NbdOption.Go) break;
            }
            while (true)
            {
                var header = await ReadAsync(from, NbdRequest.Size, ct);
                if (!NbdRequest.TryRead(header, out var r)) return;
                var payload = r.Command == NbdCommand.Write ? await ReadAsync(from, (int)r.Length, ct) : [];
                if (r.Command == NbdCommand.Disconnect)
                {
                    lock (_lock) if (_serverGone) return;
                    await to.WriteAsync(header, ct);
                    return;
                }
                bool gone;
                lock (_lock)
                {
                    gone = _serverGone;
                    if (!gone) _waiting[r.Cookie] = (r.Command, r.Length, r.Offset);
                }
                if (gone)
                {
                    // Never sent, yet fio counts a write it was told failed as written: its block may read back old.
                    proxy._unanswered.Add(r.Offset);
                    await AnswerEioAsync(r.Cookie, r.Command);
                    continue;
                }
                try
                {
                    await to.WriteAsync(header.Concat(payload).ToArray(), ct);
                }
                catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
                {
                    // Answered when the server's side is found gone.
                }
            }
        }

        /// <summary>Server to client: the greeting and option replies, then replies, each forwarded whole.</summary>
        private async Task DownAsync(NetworkStream from, NetworkStream to, CancellationToken ct)
        {
            await SendAsync(to, await ReadAsync(from, NbdWire.GreetingSize, ct));
            while (true)
            {
                var header = await ReadAsync(from, NbdWire.OptionReplyHeaderSize, ct);
                var data = await ReadAsync(from, (int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16)), ct);
                await SendAsync(to, [.. header, .. data]);
                if ((NbdOption)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)) == NbdOption.Go
                    && (NbdReplyType)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)) == NbdReplyType.Ack)
                {
                    break;
                }
            }
            while (true)
            {
                var magic = await ReadAsync(from, 4, ct);
                if (BinaryPrimitives.ReadUInt32BigEndian(magic) == NbdMagic.SimpleReply)
                {
                    var rest = await ReadAsync(from, 12, ct);
                    var cookie = BinaryPrimitives.ReadUInt64BigEndian(rest.AsSpan(4));
                    var ok = BinaryPrimitives.ReadUInt32BigEndian(rest) == 0;
                    var data = ok && _waiting.TryGetValue(cookie, out var w) && w.Command == NbdCommand.Read ? await ReadAsync(from, (int)w.Length, ct) : [];
                    _waiting.TryRemove(cookie, out _);
                    await SendAsync(to, [.. magic, .. rest, .. data]);
                }
                else
                {
                    var rest = await ReadAsync(from, 16, ct);
                    var payload = await ReadAsync(from, (int)BinaryPrimitives.ReadUInt32BigEndian(rest.AsSpan(12)), ct);
                    if ((BinaryPrimitives.ReadUInt16BigEndian(rest) & 1) != 0) _waiting.TryRemove(BinaryPrimitives.ReadUInt64BigEndian(rest.AsSpan(4)), out _);
                    await SendAsync(to, [.. magic, .. rest, .. payload]);
                }
            }
        }

        private async Task ServerGoneAsync()
        {
            KeyValuePair<ulong, (NbdCommand Command, uint Length, ulong Offset)>[] waiting;
            lock (_lock)
            {
                _serverGone = true;
                waiting = [.. _waiting];
                _waiting.Clear();
            }
            foreach (var (cookie, (command, _, offset)) in waiting)
            {
                proxy._unanswered.Add(offset);
                await AnswerEioAsync(cookie, command);
            }
        }

        private async Task AnswerEioAsync(ulong cookie, NbdCommand command)
        {
            Interlocked.Increment(ref proxy._answered);
            byte[] reply;
            if (command == NbdCommand.Read && _structured)
            {
                reply = NbdWire.ErrorChunk(NbdError.Io, cookie, "the server went away");
            }
            else
            {
                reply = new byte[NbdWire.SimpleReplySize];
                NbdWire.WriteSimpleReply(reply, NbdError.Io, cookie);
            }
            try
            {
                await SendAsync(client.GetStream(), reply);
            }
            catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
            {
            }
        }

        private async Task SendAsync(NetworkStream to, byte[] bytes)
        {
            await _toClient.WaitAsync();
            try
            {
                await to.WriteAsync(bytes);
            }
            finally
            {
                _toClient.Release();
            }
        }

        private static async Task ForwardAsync(NetworkStream from, NetworkStream to, int count, CancellationToken ct) =>
            await to.WriteAsync(await ReadAsync(from, count, ct), ct);

        private static async Task<byte[]> ReadAsync(NetworkStream from, int count, CancellationToken ct)
        {
            var buffer = new byte[count];
            await from.ReadExactlyAsync(buffer, ct);
            return buffer;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}
