using System.Buffers.Binary;

namespace TaggedMirror.Contracts.Transactions;

/// <summary>
/// The fixed part of a transaction, carried in the <see cref="HeaderNames.Header"/> Kafka header.
/// Layout of version 2 (little-endian, <see cref="Size"/> bytes): version u8, kind u8, flags u16, tag 16,
/// firstBlock i64, blockCount i32, blockSize i32, objectBlocks i64, ownerEpoch i64, crc32c u32.
/// Version 1 (<see cref="SizeV1"/> bytes, written before owner epochs) lacks ownerEpoch; it still reads, as owner epoch 0.
/// </summary>
/// <param name="Kind">What the device is asked to do.</param>
/// <param name="Tag">The write's tag; for a barrier, (controller, epoch, upToSeq).</param>
/// <param name="FirstBlock">First block written. For an append, the controller places it at the end of the extension as the controller knows it.</param>
/// <param name="BlockCount">Blocks of data carried in the value.</param>
/// <param name="BlockSize">Bytes per block of the volume, a power of two from 512 to 65536.</param>
/// <param name="ObjectBlocks">The storage object's base capacity in blocks; blocks past it are its extension.</param>
/// <param name="Flags">Kind-specific flags, e.g. <see cref="TransactionFlags.EpochClosed"/> on a barrier.</param>
/// <param name="OwnerEpoch">
/// The sender's owner epoch of the volume (its lease's fencing token): a device refuses a write, append, repair
/// or delete of an object from an owner epoch older than the newest it has seen for that object in that partition
/// (from a <see cref="TransactionKind.Fence"/>, a write or a delete). 0 on barriers, which belong to no volume.
/// </param>
public readonly record struct TransactionHeader(
    TransactionKind Kind,
    Tag Tag,
    long FirstBlock,
    int BlockCount,
    int BlockSize,
    long ObjectBlocks,
    TransactionFlags Flags = TransactionFlags.None,
    long OwnerEpoch = 0)
{
    /// <summary>The format version this code writes; it reads this one and version 1.</summary>
    public const byte CurrentVersion = 2;

    /// <summary>Encoded size in bytes of the current version.</summary>
    public const int Size = 56;

    /// <summary>Offset of the CRC, which covers every byte before it plus the object id's length (u16), object id, tokens and data.</summary>
    public const int CrcOffset = 52;

    /// <summary>Encoded size of version 1, which had no owner epoch; its CRC is at <see cref="CrcOffsetV1"/>.</summary>
    public const int SizeV1 = 48;

    /// <summary>Offset of version 1's CRC.</summary>
    public const int CrcOffsetV1 = 44;

    /// <summary>Encoded size of a header of <paramref name="version"/>, or -1 for a version this code does not read.</summary>
    public static int SizeOf(byte version) => version switch { 1 => SizeV1, CurrentVersion => Size, _ => -1 };

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
        if (version >= 2) BinaryPrimitives.WriteInt64LittleEndian(destination[44..], OwnerEpoch);
    }

    internal static TransactionHeader ReadFrom(ReadOnlySpan<byte> source) => new(
        (TransactionKind)source[1],
        Tag.ReadFrom(source[4..]),
        BinaryPrimitives.ReadInt64LittleEndian(source[20..]),
        BinaryPrimitives.ReadInt32LittleEndian(source[28..]),
        BinaryPrimitives.ReadInt32LittleEndian(source[32..]),
        BinaryPrimitives.ReadInt64LittleEndian(source[36..]),
        (TransactionFlags)BinaryPrimitives.ReadUInt16LittleEndian(source[2..]),
        source[0] >= 2 ? BinaryPrimitives.ReadInt64LittleEndian(source[44..]) : 0);
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
