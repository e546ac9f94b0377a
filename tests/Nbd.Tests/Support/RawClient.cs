using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using TaggedMirror.Nbd.Protocol;

namespace TaggedMirror.Nbd.Tests.Support;

/// <summary>A client that speaks the protocol byte by byte, to send what no real client would.</summary>
public sealed class RawClient : IAsyncDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly Socket _socket;
    private readonly NetworkStream _stream;

    private RawClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    public static async Task<RawClient> ConnectAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        return new RawClient(socket);
    }

    /// <summary>Greeting read, client flags sent (fixed newstyle, no zeroes unless told otherwise).</summary>
    public static async Task<RawClient> HandshakeAsync(int port, uint clientFlags = 3)
    {
        var c = await ConnectAsync(port);
        var greeting = await c.ReadAsync(NbdWire.GreetingSize);
        Assert.Equal("NBDMAGICIHAVEOPT", Encoding.ASCII.GetString(greeting, 0, 16));
        await c.SendAsync(BigEndian32(clientFlags));
        return c;
    }

    /// <summary>Handshake, optionally structured replies (and base:allocation), then GO for <paramref name="export"/>; returns the size.</summary>
    public static async Task<RawClient> OpenAsync(int port, string export, bool structured = true, bool allocation = false)
    {
        var c = await HandshakeAsync(port);
        if (structured)
        {
            await c.SendOptionAsync(NbdOption.StructuredReply, []);
            Assert.Equal(NbdReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
        }
        if (allocation)
        {
            await c.SendOptionAsync(NbdOption.SetMetaContext, MetaQuery(export, NbdMetaContextQuery.BaseAllocation));
            Assert.Equal(NbdReplyType.MetaContext, (await c.ReadOptionReplyAsync()).Type);
            Assert.Equal(NbdReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
        }
        await c.SendOptionAsync(NbdOption.Go, ExportQuery(export));
        while (true)
        {
            var reply = await c.ReadOptionReplyAsync();
            if (reply.Type == NbdReplyType.Ack) return c;
            Assert.Equal(NbdReplyType.Info, reply.Type);
        }
    }

    public static byte[] ExportQuery(string name, params ushort[] infos)
    {
        var n = Encoding.UTF8.GetBytes(name);
        var data = new byte[4 + n.Length + 2 + 2 * infos.Length];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)n.Length);
        n.CopyTo(data, 4);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(4 + n.Length), (ushort)infos.Length);
        for (var i = 0; i < infos.Length; i++) BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(6 + n.Length + 2 * i), infos[i]);
        return data;
    }

    public static byte[] MetaQuery(string export, params string[] queries)
    {
        var parts = new List<byte>();
        void Add(string s)
        {
            var b = Encoding.UTF8.GetBytes(s);
            parts.AddRange(BigEndian32((uint)b.Length));
            parts.AddRange(b);
        }
        Add(export);
        parts.AddRange(BigEndian32((uint)queries.Length));
        foreach (var q in queries) Add(q);
        return [.. parts];
    }

    public Task SendOptionAsync(NbdOption option, byte[] data) => SendOptionAsync((uint)option, (uint)data.Length, data);

    public async Task SendOptionAsync(uint option, uint declaredLength, byte[] data)
    {
        var header = new byte[NbdWire.OptionHeaderSize];
        BinaryPrimitives.WriteUInt64BigEndian(header, NbdMagic.Option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), declaredLength);
        await SendAsync([.. header, .. data]);
    }

    public async Task<(NbdOption Option, NbdReplyType Type, byte[] Data)> ReadOptionReplyAsync()
    {
        var header = await ReadAsync(NbdWire.OptionReplyHeaderSize);
        Assert.Equal(NbdMagic.OptionReply, BinaryPrimitives.ReadUInt64BigEndian(header));
        var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        return ((NbdOption)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)), (NbdReplyType)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)),
            await ReadAsync((int)length));
    }

    public async Task SendRequestAsync(NbdCommand command, ulong cookie, ulong offset, uint length, byte[]? payload = null, NbdCommandFlags flags = NbdCommandFlags.None)
    {
        var header = new byte[NbdRequest.Size];
        new NbdRequest(flags, command, cookie, offset, length).WriteTo(header);
        await SendAsync(payload is null ? header : [.. header, .. payload]);
    }

    /// <summary>
    /// BLOCK_STATUS of [<paramref name="offset"/>, +<paramref name="length"/>) in the one metadata context the handshake
    /// asked for (id 1): its extents as (length, flags). Anything but that chunk fails the test.
    /// </summary>
    public async Task<List<(uint Length, uint Flags)>> BlockStatusAsync(ulong cookie, ulong offset, uint length, NbdCommandFlags flags = NbdCommandFlags.None)
    {
        await SendRequestAsync(NbdCommand.BlockStatus, cookie, offset, length, flags: flags);
        var reply = await ReadReplyAsync();
        Assert.True((cookie, NbdError.None, (NbdChunkType?)NbdChunkType.BlockStatus) == (reply.Cookie, reply.Error, reply.Chunk), $"block status {offset}+{length}: {reply.Error} {reply.Message}");
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32BigEndian(reply.Data));
        var extents = new List<(uint, uint)>();
        for (var i = 4; i < reply.Data.Length; i += 8)
            extents.Add((BinaryPrimitives.ReadUInt32BigEndian(reply.Data.AsSpan(i)), BinaryPrimitives.ReadUInt32BigEndian(reply.Data.AsSpan(i + 4))));
        return extents;
    }

    /// <summary>The next reply: a simple reply (with <paramref name="readLength"/> bytes of data for a successful simple READ) or one structured chunk.</summary>
    public async Task<Reply> ReadReplyAsync(int readLength = 0)
    {
        var magic = BinaryPrimitives.ReadUInt32BigEndian(await ReadAsync(4));
        if (magic == NbdMagic.SimpleReply)
        {
            var rest = await ReadAsync(12);
            var error = (NbdError)BinaryPrimitives.ReadUInt32BigEndian(rest);
            var cookie = BinaryPrimitives.ReadUInt64BigEndian(rest.AsSpan(4));
            var data = error == NbdError.None && readLength > 0 ? await ReadAsync(readLength) : [];
            return new Reply(cookie, error, null, data, "");
        }
        Assert.Equal(NbdMagic.StructuredReply, magic);
        var h = await ReadAsync(16);
        var type = (NbdChunkType)BinaryPrimitives.ReadUInt16BigEndian(h.AsSpan(2));
        var c = BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(4));
        var payload = await ReadAsync((int)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(12)));
        return type switch
        {
            NbdChunkType.Error => new Reply(c, (NbdError)BinaryPrimitives.ReadUInt32BigEndian(payload), type, [],
                Encoding.UTF8.GetString(payload, 6, BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(4)))),
            NbdChunkType.OffsetData => new Reply(c, NbdError.None, type, payload[8..], ""),
            _ => new Reply(c, NbdError.None, type, payload, ""),
        };
    }

    public sealed record Reply(ulong Cookie, NbdError Error, NbdChunkType? Chunk, byte[] Data, string Message);

    /// <summary>True when the server closes the connection (end of stream or reset) within a few seconds, after any bytes it still sends.</summary>
    public async Task<bool> ClosedByServerAsync()
    {
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(Patience);
        try
        {
            while (await _stream.ReadAsync(buffer, cts.Token) > 0)
            {
            }
            return true;
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async Task SendAsync(byte[] bytes) => await _stream.WriteAsync(bytes);

    public async Task<byte[]> ReadAsync(int count)
    {
        var buffer = new byte[count];
        using var cts = new CancellationTokenSource(Patience);
        await _stream.ReadExactlyAsync(buffer, cts.Token);
        return buffer;
    }

    /// <summary>Closes abruptly (RST), as a client that crashed.</summary>
    public void Abort()
    {
        _socket.LingerState = new LingerOption(true, 0);
        _stream.Dispose();
    }

    public static byte[] BigEndian32(uint value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        return b;
    }

    public async ValueTask DisposeAsync() => await _stream.DisposeAsync();
}
