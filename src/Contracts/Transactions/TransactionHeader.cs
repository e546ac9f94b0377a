using System.Buffers.Binary;

namespace TaggedMirror.Contracts.Transactions;

/// <summary>
/// The fixed part of a transaction, carried in the <see cref="HeaderNames.Header"/> Kafka header.
/// Layout (little-endian, <see cref="Size"/> bytes): version u8, kind u8, flags u16, tag 16,
/// firstBlock i64, blockCount i32, blockSize i32, objectBlocks i64, crc32c u32.
/// </summary>
/// <param name="Kind">What the device is asked to do.</param>
/// <param name="Tag">The write's tag; for a barrier, (controller, epoch, upToSeq).</param>
/// <param name="FirstBlock">First block written. For an append, the controller places it at the end of the extension as the controller knows it.</param>
/// <param name="BlockCount">Blocks of data carried in the value.</param>
/// <param name="BlockSize">Bytes per block of the volume, a power of two from 512 to 65536.</param>
/// <param name="ObjectBlocks">The storage object's base capacity in blocks; blocks past it are its extension.</param>
/// <param name="Flags">Kind-specific flags, e.g. <see cref="TransactionFlags.EpochClosed"/> on a barrier.</param>
public readonly record struct TransactionHeader(
    TransactionKind Kind,
    Tag Tag,
    long FirstBlock,
    int BlockCount,
    int BlockSize,
    long ObjectBlocks,
    TransactionFlags Flags = TransactionFlags.None)
{
    /// <summary>The only format version this code writes and accepts.</summary>
    public const byte CurrentVersion = 1;

    /// <summary>Encoded size in bytes.</summary>
    public const int Size = 48;

    /// <summary>Offset of the CRC, which covers every byte before it plus the object id's length (u16), object id, tokens and data.</summary>
    public const int CrcOffset = 44;

    /// <summary>Bytes of data the value must carry.</summary>
    public long DataLength => (long)BlockCount * BlockSize;

    internal void WriteTo(Span<byte> destination, byte version)
    {
        destination[0] = version;
        destination[1] = (byte)Kind;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], (ushort)Flags);
        Tag.WriteTo(destination[4..]);
        BinaryPrimitives.WriteInt64LittleEndian(destination[20..], FirstBlock);
        BinaryPrimitives.WriteInt32LittleEndian(destination[28..], BlockCount);
        BinaryPrimitives.WriteInt32LittleEndian(destination[32..], BlockSize);
        BinaryPrimitives.WriteInt64LittleEndian(destination[36..], ObjectBlocks);
    }

    internal static TransactionHeader ReadFrom(ReadOnlySpan<byte> source) => new(
        (TransactionKind)source[1],
        Tag.ReadFrom(source[4..]),
        BinaryPrimitives.ReadInt64LittleEndian(source[20..]),
        BinaryPrimitives.ReadInt32LittleEndian(source[28..]),
        BinaryPrimitives.ReadInt32LittleEndian(source[32..]),
        BinaryPrimitives.ReadInt64LittleEndian(source[36..]),
        (TransactionFlags)BinaryPrimitives.ReadUInt16LittleEndian(source[2..]));
}

/// <summary>Kind-specific flags of a transaction.</summary>
[Flags]
public enum TransactionFlags : ushort
{
    /// <summary>No flag.</summary>
    None = 0,

    /// <summary>On a barrier: the epoch is over; no write of it will ever come after this barrier.</summary>
    EpochClosed = 1,
}
