using System.Buffers.Binary;
using System.Text;

namespace TaggedMirror.Nbd.Protocol;

/// <summary>What the server writes, byte for byte (spec "Fixed newstyle negotiation", "Simple reply message", "Structured reply chunk message").</summary>
public static class NbdWire
{
    /// <summary>Bytes of the greeting.</summary>
    public const int GreetingSize = 18;

    /// <summary>Bytes of an option reply's header, before its data.</summary>
    public const int OptionReplyHeaderSize = 20;

    /// <summary>Bytes of a simple reply, before a successful READ's data.</summary>
    public const int SimpleReplySize = 16;

    /// <summary>Bytes of a structured chunk's header, before its payload.</summary>
    public const int ChunkHeaderSize = 20;

    /// <summary>Bytes of an option request's header (magic, option, length), before its data.</summary>
    public const int OptionHeaderSize = 16;

    /// <summary>Longest string (export name, message) the spec lets either side send.</summary>
    public const int MaxString = 4096;

    /// <summary>"NBDMAGIC", "IHAVEOPT", handshake flags.</summary>
    public static void WriteGreeting(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, NbdMagic.Init);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], NbdMagic.Option);
        BinaryPrimitives.WriteUInt16BigEndian(destination[16..], NbdMagic.HandshakeFlags);
    }

    /// <summary>Reads an option request's header; false when it does not start with "IHAVEOPT" (close the connection).</summary>
    public static bool TryReadOptionHeader(ReadOnlySpan<byte> source, out NbdOption option, out uint length)
    {
        option = default;
        length = 0;
        if (source.Length < OptionHeaderSize || BinaryPrimitives.ReadUInt64BigEndian(source) != NbdMagic.Option) return false;
        option = (NbdOption)BinaryPrimitives.ReadUInt32BigEndian(source[8..]);
        length = BinaryPrimitives.ReadUInt32BigEndian(source[12..]);
        return true;
    }

    /// <summary>The header of an option reply carrying <paramref name="dataLength"/> bytes of data.</summary>
    public static void WriteOptionReply(Span<byte> destination, NbdOption option, NbdReplyType type, int dataLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(dataLength);
        BinaryPrimitives.WriteUInt64BigEndian(destination, NbdMagic.OptionReply);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], (uint)option);
        BinaryPrimitives.WriteUInt32BigEndian(destination[12..], (uint)type);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], (uint)dataLength);
    }

    /// <summary>A whole option reply: header and data.</summary>
    public static byte[] OptionReply(NbdOption option, NbdReplyType type, ReadOnlySpan<byte> data)
    {
        var reply = new byte[OptionReplyHeaderSize + data.Length];
        WriteOptionReply(reply, option, type, data.Length);
        data.CopyTo(reply.AsSpan(OptionReplyHeaderSize));
        return reply;
    }

    /// <summary>An error reply with a message (cut to <see cref="MaxString"/> bytes: longer ones make libnbd drop the connection).</summary>
    public static byte[] OptionError(NbdOption option, NbdReplyType error, string message) =>
        OptionReply(option, error, Utf8(message, MaxString));

    /// <summary><see cref="NbdInfoType.Export"/>: size and transmission flags (12 bytes, the length qemu insists on).</summary>
    public static byte[] InfoExport(ulong size, NbdTransmissionFlags flags)
    {
        var data = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(data, (ushort)NbdInfoType.Export);
        BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(2), size);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(10), (ushort)flags);
        return data;
    }

    /// <summary><see cref="NbdInfoType.BlockSize"/>: minimum, preferred and maximum payload (14 bytes).</summary>
    public static byte[] InfoBlockSize(uint minimum, uint preferred, uint maximum)
    {
        var data = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(data, (ushort)NbdInfoType.BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(2), minimum);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(6), preferred);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(10), maximum);
        return data;
    }

    /// <summary><see cref="NbdInfoType.Name"/> or <see cref="NbdInfoType.Description"/>: the type, then the text.</summary>
    public static byte[] InfoText(NbdInfoType type, string text)
    {
        var utf8 = Utf8(text, MaxString);
        var data = new byte[2 + utf8.Length];
        BinaryPrimitives.WriteUInt16BigEndian(data, (ushort)type);
        utf8.CopyTo(data, 2);
        return data;
    }

    /// <summary><see cref="NbdReplyType.Server"/> data: name length, name, description.</summary>
    public static byte[] ServerEntry(string name, string description)
    {
        var n = Utf8(name, MaxString);
        var d = Utf8(description, MaxString);
        var data = new byte[4 + n.Length + d.Length];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)n.Length);
        n.CopyTo(data, 4);
        d.CopyTo(data, 4 + n.Length);
        return data;
    }

    /// <summary>A simple reply: magic, error, cookie (a successful READ's data follows it).</summary>
    public static void WriteSimpleReply(Span<byte> destination, NbdError error, ulong cookie)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdMagic.SimpleReply);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], (uint)error);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], cookie);
    }

    /// <summary>A structured chunk's header; <paramref name="done"/> on the last chunk of a reply.</summary>
    public static void WriteChunkHeader(Span<byte> destination, bool done, NbdChunkType type, ulong cookie, uint payloadLength)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdMagic.StructuredReply);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], done ? (ushort)1 : (ushort)0);
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)type);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], cookie);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], payloadLength);
    }

    /// <summary>A whole <see cref="NbdChunkType.Error"/> chunk, the last of its reply: error, message length, message.</summary>
    public static byte[] ErrorChunk(NbdError error, ulong cookie, string message)
    {
        var text = Utf8(message, MaxString);
        var chunk = new byte[ChunkHeaderSize + 6 + text.Length];
        WriteChunkHeader(chunk, done: true, NbdChunkType.Error, cookie, (uint)(6 + text.Length));
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(ChunkHeaderSize), (uint)error);
        BinaryPrimitives.WriteUInt16BigEndian(chunk.AsSpan(ChunkHeaderSize + 4), (ushort)text.Length);
        text.CopyTo(chunk, ChunkHeaderSize + 6);
        return chunk;
    }

    /// <summary><see cref="NbdReplyType.MetaContext"/> data: the context's id, then its name.</summary>
    public static byte[] MetaContext(uint id, string name)
    {
        var n = Utf8(name, MaxString);
        var data = new byte[4 + n.Length];
        BinaryPrimitives.WriteUInt32BigEndian(data, id);
        n.CopyTo(data, 4);
        return data;
    }

    /// <summary>
    /// What a server sends after <see cref="NbdOption.ExportName"/> (there is no option reply to it): size, transmission
    /// flags, and 124 zero bytes unless both sides agreed to leave them out.
    /// </summary>
    public static byte[] ExportNameReply(ulong size, NbdTransmissionFlags flags, bool noZeroes)
    {
        var reply = new byte[10 + (noZeroes ? 0 : 124)];
        BinaryPrimitives.WriteUInt64BigEndian(reply, size);
        BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(8), (ushort)flags);
        return reply;
    }

    /// <summary>Bytes before a READ's data in an <see cref="NbdChunkType.OffsetData"/> chunk: the header and the offset.</summary>
    public const int OffsetDataPrefixSize = ChunkHeaderSize + 8;

    /// <summary>The header and offset of the one <see cref="NbdChunkType.OffsetData"/> chunk that answers a READ whole (<paramref name="dataLength"/> bytes follow).</summary>
    public static void WriteOffsetDataPrefix(Span<byte> destination, ulong cookie, ulong offset, int dataLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(dataLength);
        WriteChunkHeader(destination, done: true, NbdChunkType.OffsetData, cookie, (uint)(8 + dataLength));
        BinaryPrimitives.WriteUInt64BigEndian(destination[ChunkHeaderSize..], offset);
    }

    /// <summary>A whole <see cref="NbdChunkType.BlockStatus"/> chunk, the last of its reply: the context, then one extent.</summary>
    public static byte[] BlockStatusChunk(ulong cookie, uint contextId, uint extentLength, uint status) =>
        BlockStatusChunk(cookie, contextId, [new NbdExtent(extentLength, (NbdAllocation)status)]);

    /// <summary>A whole <see cref="NbdChunkType.BlockStatus"/> chunk, the last of its reply: the context, then each extent in order.</summary>
    public static byte[] BlockStatusChunk(ulong cookie, uint contextId, IReadOnlyList<NbdExtent> extents)
    {
        ArgumentOutOfRangeException.ThrowIfZero(extents.Count);
        var payload = 4 + 8 * extents.Count;
        var chunk = new byte[ChunkHeaderSize + payload];
        WriteChunkHeader(chunk, done: true, NbdChunkType.BlockStatus, cookie, (uint)payload);
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(ChunkHeaderSize), contextId);
        for (var i = 0; i < extents.Count; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(ChunkHeaderSize + 4 + 8 * i), extents[i].Length);
            BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(ChunkHeaderSize + 8 + 8 * i), (uint)extents[i].Status);
        }
        return chunk;
    }

    /// <summary>UTF-8 of <paramref name="text"/>, cut at a character boundary to at most <paramref name="max"/> bytes.</summary>
    private static byte[] Utf8(string text, int max)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        if (bytes.Length <= max) return bytes;
        var cut = max;
        while (cut > 0 && (bytes[cut] & 0xC0) == 0x80) cut--;
        return bytes[..cut];
    }
}
