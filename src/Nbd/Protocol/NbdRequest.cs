using System.Buffers.Binary;

namespace TaggedMirror.Nbd.Protocol;

/// <summary>
/// One request in transmission (spec "Request message"): magic u32, flags u16, type u16, cookie u64, offset u64,
/// length u32, big-endian, <see cref="Size"/> bytes; a WRITE's data follows (length bytes).
/// </summary>
/// <param name="Flags">Command flags.</param>
/// <param name="Command">The request type (any value: unknown ones are answered EINVAL, not parsed away).</param>
/// <param name="Cookie">Opaque to the server; echoed in every reply to the request.</param>
/// <param name="Offset">Byte offset in the export.</param>
/// <param name="Length">Bytes the request concerns.</param>
public readonly record struct NbdRequest(NbdCommandFlags Flags, NbdCommand Command, ulong Cookie, ulong Offset, uint Length)
{
    /// <summary>Bytes of a request header.</summary>
    public const int Size = 28;

    /// <summary>Reads a request header; false when it does not start with <see cref="NbdMagic.Request"/> (the stream is lost: close it).</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out NbdRequest request)
    {
        request = default;
        if (source.Length < Size || BinaryPrimitives.ReadUInt32BigEndian(source) != NbdMagic.Request) return false;
        request = new NbdRequest(
            (NbdCommandFlags)BinaryPrimitives.ReadUInt16BigEndian(source[4..]),
            (NbdCommand)BinaryPrimitives.ReadUInt16BigEndian(source[6..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[24..]));
        return true;
    }

    /// <summary>Writes the header (what a client sends; for tests and tools).</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdMagic.Request);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], (ushort)Flags);
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)Command);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], Cookie);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], Offset);
        BinaryPrimitives.WriteUInt32BigEndian(destination[24..], Length);
    }

    /// <summary>
    /// True when [offset, offset + length) lies within an export of <paramref name="size"/> bytes, written without
    /// offset + length, which can overflow.
    /// </summary>
    public bool Within(ulong size) => Offset <= size && Length <= size - Offset;
}
