using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using TaggedMirror.Nbd.Protocol;

namespace TaggedMirror.Nbd.Client;

/// <summary>
/// A small NBD client, one request at a time (fixed newstyle, structured replies, GO with the block sizes): what
/// <c>tm demo</c> writes and reads a volume through. Real workloads use qemu, libnbd or the kernel.
/// </summary>
public sealed class NbdClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private ulong _cookie;
    private ulong _lastOffset;   // the offset of the READ in flight: a data chunk's offset is absolute

    private NbdClient(Socket socket, ulong size, NbdTransmissionFlags flags, uint minimumBlockSize)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        Size = size;
        Flags = flags;
        MinimumBlockSize = minimumBlockSize;
    }

    /// <summary>The export's size in bytes.</summary>
    public ulong Size { get; }

    /// <summary>What the export supports.</summary>
    public NbdTransmissionFlags Flags { get; }

    /// <summary>Offsets and lengths are multiples of it.</summary>
    public uint MinimumBlockSize { get; }

    /// <summary>Connects to <paramref name="host"/>:<paramref name="port"/> and opens <paramref name="export"/>; an <see cref="IOException"/> says why not.</summary>
    public static async Task<NbdClient> ConnectAsync(string host, int port, string export, CancellationToken ct)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, ct).ConfigureAwait(false);
            var stream = new NetworkStream(socket, ownsSocket: false);
            await using (stream.ConfigureAwait(false))
            {
                var greeting = await ReadAsync(stream, NbdWire.GreetingSize, ct).ConfigureAwait(false);
                if (BinaryPrimitives.ReadUInt64BigEndian(greeting) != NbdMagic.Init || BinaryPrimitives.ReadUInt64BigEndian(greeting.AsSpan(8)) != NbdMagic.Option)
                    throw new IOException($"{host}:{port} is not a newstyle NBD server");
                await stream.WriteAsync(BigEndian32(NbdMagic.ClientFixedNewstyle | NbdMagic.ClientNoZeroes), ct).ConfigureAwait(false);
                await OptionAsync(stream, NbdOption.StructuredReply, [], ct).ConfigureAwait(false);
                var reply = await ReadOptionReplyAsync(stream, ct).ConfigureAwait(false);
                if (reply.Type != NbdReplyType.Ack) throw new IOException($"{host}:{port} refused structured replies ({reply.Type})");

                var name = Encoding.UTF8.GetBytes(export);
                var query = new byte[4 + name.Length + 4];
                BinaryPrimitives.WriteUInt32BigEndian(query, (uint)name.Length);
                name.CopyTo(query, 4);
                BinaryPrimitives.WriteUInt16BigEndian(query.AsSpan(4 + name.Length), 1);
                BinaryPrimitives.WriteUInt16BigEndian(query.AsSpan(6 + name.Length), (ushort)NbdInfoType.BlockSize);
                await OptionAsync(stream, NbdOption.Go, query, ct).ConfigureAwait(false);
                ulong size = 0;
                var flags = NbdTransmissionFlags.None;
                uint minimum = 1;
                while (true)
                {
                    reply = await ReadOptionReplyAsync(stream, ct).ConfigureAwait(false);
                    if (reply.Type == NbdReplyType.Ack) break;
                    if (((uint)reply.Type & 0x80000000) != 0)
                        throw new IOException($"{host}:{port} refused export '{export}': {Encoding.UTF8.GetString(reply.Data)} ({reply.Type})");
                    if (reply.Type != NbdReplyType.Info || reply.Data.Length < 2) continue;
                    switch ((NbdInfoType)BinaryPrimitives.ReadUInt16BigEndian(reply.Data))
                    {
                        case NbdInfoType.Export when reply.Data.Length >= 12:
                            size = BinaryPrimitives.ReadUInt64BigEndian(reply.Data.AsSpan(2));
                            flags = (NbdTransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(reply.Data.AsSpan(10));
                            break;
                        case NbdInfoType.BlockSize when reply.Data.Length >= 14:
                            minimum = BinaryPrimitives.ReadUInt32BigEndian(reply.Data.AsSpan(2));
                            break;
                    }
                }
                return new NbdClient(socket, size, flags, minimum);
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> and waits for the answer.</summary>
    public async Task WriteAsync(ulong offset, byte[] data, bool fua, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(data);
        await RequestAsync(NbdCommand.Write, offset, (uint)data.Length, data, fua ? NbdCommandFlags.Fua : NbdCommandFlags.None, ct).ConfigureAwait(false);
        await ReplyAsync(0, ct).ConfigureAwait(false);
    }

    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="offset"/>.</summary>
    public async Task<byte[]> ReadAsync(ulong offset, uint length, CancellationToken ct)
    {
        _lastOffset = offset;
        await RequestAsync(NbdCommand.Read, offset, length, null, NbdCommandFlags.None, ct).ConfigureAwait(false);
        return await ReplyAsync(length, ct).ConfigureAwait(false);
    }

    /// <summary>Waits until every write answered so far is durable.</summary>
    public async Task FlushAsync(CancellationToken ct)
    {
        await RequestAsync(NbdCommand.Flush, 0, 0, null, NbdCommandFlags.None, ct).ConfigureAwait(false);
        await ReplyAsync(0, ct).ConfigureAwait(false);
    }

    private async Task RequestAsync(NbdCommand command, ulong offset, uint length, byte[]? payload, NbdCommandFlags flags, CancellationToken ct)
    {
        var header = new byte[NbdRequest.Size];
        new NbdRequest(flags, command, ++_cookie, offset, length).WriteTo(header);
        await _stream.WriteAsync(header, ct).ConfigureAwait(false);
        if (payload is not null) await _stream.WriteAsync(payload, ct).ConfigureAwait(false);
    }

    /// <summary>The reply to the last request (one in flight at a time): its data for a READ, or an <see cref="IOException"/> with the server's error.</summary>
    private async Task<byte[]> ReplyAsync(uint readLength, CancellationToken ct)
    {
        var data = readLength == 0 ? [] : new byte[readLength];
        while (true)
        {
            var magic = BinaryPrimitives.ReadUInt32BigEndian(await ReadAsync(_stream, 4, ct).ConfigureAwait(false));
            if (magic == NbdMagic.SimpleReply)
            {
                var rest = await ReadAsync(_stream, 12, ct).ConfigureAwait(false);
                var error = (NbdError)BinaryPrimitives.ReadUInt32BigEndian(rest);
                if (error != NbdError.None) throw new IOException($"NBD error {error}");
                return data;
            }
            if (magic != NbdMagic.StructuredReply) throw new IOException($"unexpected reply magic 0x{magic:x8}");
            var header = await ReadAsync(_stream, 16, ct).ConfigureAwait(false);
            var done = (BinaryPrimitives.ReadUInt16BigEndian(header) & 1) != 0;
            var type = (NbdChunkType)BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(2));
            var payload = await ReadAsync(_stream, (int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)), ct).ConfigureAwait(false);
            switch (type)
            {
                case NbdChunkType.Error or NbdChunkType.ErrorOffset:
                    var length = BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(4));
                    throw new IOException($"NBD error {(NbdError)BinaryPrimitives.ReadUInt32BigEndian(payload)}: {Encoding.UTF8.GetString(payload, 6, Math.Min(length, payload.Length - 6))}");
                case NbdChunkType.OffsetData:
                    // Chunks of one reply may come in any order: each says where its data goes.
                    payload.AsSpan(8).CopyTo(data.AsSpan((int)(BinaryPrimitives.ReadUInt64BigEndian(payload) - _lastOffset)));
                    break;
            }
            if (done) return data;
        }
    }

    private static async Task OptionAsync(NetworkStream stream, NbdOption option, byte[] data, CancellationToken ct)
    {
        var header = new byte[NbdWire.OptionHeaderSize];
        BinaryPrimitives.WriteUInt64BigEndian(header, NbdMagic.Option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), (uint)option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), (uint)data.Length);
        await stream.WriteAsync(header, ct).ConfigureAwait(false);
        if (data.Length > 0) await stream.WriteAsync(data, ct).ConfigureAwait(false);
    }

    private static async Task<(NbdReplyType Type, byte[] Data)> ReadOptionReplyAsync(NetworkStream stream, CancellationToken ct)
    {
        var header = await ReadAsync(stream, NbdWire.OptionReplyHeaderSize, ct).ConfigureAwait(false);
        if (BinaryPrimitives.ReadUInt64BigEndian(header) != NbdMagic.OptionReply) throw new IOException("not an option reply");
        var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        if (length > 64 * 1024) throw new IOException($"an option reply of {length} bytes");
        return ((NbdReplyType)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)), await ReadAsync(stream, (int)length, ct).ConfigureAwait(false));
    }

    private static async Task<byte[]> ReadAsync(NetworkStream stream, int count, CancellationToken ct)
    {
        var buffer = new byte[count];
        await stream.ReadExactlyAsync(buffer, ct).ConfigureAwait(false);
        return buffer;
    }

    private static byte[] BigEndian32(uint value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        return b;
    }

    /// <summary>Sends NBD_CMD_DISC and closes.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await RequestAsync(NbdCommand.Disconnect, 0, 0, null, NbdCommandFlags.None, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
        }
        await _stream.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
    }
}
