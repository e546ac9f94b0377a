using System.Buffers.Binary;

namespace TaggedMirror.Contracts.Transactions;

/// <summary>
/// Encodes and checks transactions. The CRC32C covers the fixed header, the object id (and its length),
/// the tokens and the data, so a flipped bit anywhere the device relies on is caught before anything is applied.
/// Nothing here allocates: callers bring the buffers.
/// </summary>
public static class TransactionCodec
{
    /// <summary>Largest number of tokens one transaction carries; more wait for the next one.</summary>
    public const int MaxTokensPerTransaction = 1024;

    /// <summary>Fills <paramref name="header"/> (<see cref="TransactionHeader.Size"/> bytes) including the CRC.</summary>
    public static void WriteHeader(
        Span<byte> header,
        in TransactionHeader fields,
        ReadOnlySpan<byte> objectId,
        ReadOnlySpan<byte> tokens,
        ReadOnlySpan<byte> data)
    {
        if (header.Length < TransactionHeader.Size)
            throw new ArgumentException($"Header buffer must hold {TransactionHeader.Size} bytes.", nameof(header));
        fields.WriteTo(header, TransactionHeader.CurrentVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(header[TransactionHeader.CrcOffset..], Checksum(header[..TransactionHeader.CrcOffset], objectId, tokens, data));
    }

    /// <summary>Writes <paramref name="tokens"/> as little-endian int64s; returns the bytes used.</summary>
    public static int WriteTokens(ReadOnlySpan<long> tokens, Span<byte> destination)
    {
        for (var i = 0; i < tokens.Length; i++)
            BinaryPrimitives.WriteInt64LittleEndian(destination[(i * 8)..], tokens[i]);
        return tokens.Length * 8;
    }

    /// <summary>Reads the token at <paramref name="index"/> of an encoded token list.</summary>
    public static long ReadToken(ReadOnlySpan<byte> tokens, int index) =>
        BinaryPrimitives.ReadInt64LittleEndian(tokens[(index * 8)..]);

    /// <summary>
    /// Checks and decodes a transaction. On failure returns false with a reason meant for a person
    /// (it goes into the dead-letter header), and the transaction must not be applied.
    /// </summary>
    public static bool TryRead(
        ReadOnlySpan<byte> header,
        ReadOnlySpan<byte> objectId,
        ReadOnlySpan<byte> tokens,
        ReadOnlySpan<byte> data,
        out TransactionHeader fields,
        out string? error)
    {
        fields = default;
        if (header.IsEmpty)
        {
            error = $"missing {HeaderNames.Header} header";
            return false;
        }
        var size = TransactionHeader.SizeOf(header[0]);
        if (size < 0)
        {
            error = $"unknown transaction format version {header[0]} (this agent reads versions 1 and {TransactionHeader.CurrentVersion})";
            return false;
        }
        if (header.Length != size)
        {
            error = $"{HeaderNames.Header} header is {header.Length} bytes, expected {size} for version {header[0]}";
            return false;
        }
        var crcOffset = size - 4;
        var expected = BinaryPrimitives.ReadUInt32LittleEndian(header[crcOffset..]);
        var actual = Checksum(header[..crcOffset], objectId, tokens, data);
        if (expected != actual)
        {
            error = $"CRC32C mismatch: header says {expected:x8}, content is {actual:x8}";
            return false;
        }
        if (tokens.Length % 8 != 0)
        {
            error = $"{HeaderNames.Tokens} header is {tokens.Length} bytes, not a multiple of 8";
            return false;
        }
        fields = TransactionHeader.ReadFrom(header);
        error = Validate(fields, objectId.Length, data.Length);
        return error is null;
    }

    /// <summary>Shape rules every transaction must meet, independent of the device's state.</summary>
    public static string? Validate(in TransactionHeader f, int objectIdLength, int dataLength)
    {
        switch (f.Kind)
        {
            case TransactionKind.Barrier:
                return dataLength == 0 ? null : "a barrier carries no data";
            case TransactionKind.Fence:
                if (objectIdLength == 0) return "missing object id";
                if (dataLength != 0 || f.BlockCount != 0) return "a fence carries no data";
                return f.OwnerEpoch > 0 ? null : $"a fence's owner epoch must be positive, not {f.OwnerEpoch}";
            case TransactionKind.Delete:
                // Shaped like a fence: it destroys an object, so it must come from an owner of the volume (a
                // positive owner epoch) and be fenced like one; no block of it is written.
                if (objectIdLength == 0) return "missing object id";
                if (dataLength != 0 || f.BlockCount != 0)
                    return $"a delete carries no data, but this one says {f.BlockCount} blocks and carries {dataLength} bytes";
                return f.OwnerEpoch > 0 ? null : $"a delete's owner epoch must be positive, not {f.OwnerEpoch}";
            case TransactionKind.Write or TransactionKind.Append or TransactionKind.Repair or TransactionKind.Zero:
                if (objectIdLength == 0) return "missing object id";
                if (!BlockSizes.IsValid(f.BlockSize)) return $"block size {f.BlockSize} is not a power of two from 512 to 65536";
                if (f.BlockCount <= 0) return f.Kind == TransactionKind.Zero ? "a zero must cover at least one block" : "a write must carry at least one block";
                if (f.ObjectBlocks <= 0) return "object capacity must be positive";
                if (f.OwnerEpoch < 0) return $"owner epoch {f.OwnerEpoch} is negative";
                if (f.Kind == TransactionKind.Zero)
                {
                    // Its blocks are implied: nothing rides with it (a zero of 2 GiB is a header).
                    if (dataLength != 0) return $"a zero carries no data, but this one carries {dataLength} bytes";
                }
                else
                {
                    // BlockCount and BlockSize are positive ints, so their product fits a long; but not the int a data length is.
                    if (f.DataLength > int.MaxValue)
                        return $"{f.BlockCount} blocks of {f.BlockSize} bytes overflow the largest data length a transaction carries";
                    if (f.DataLength != dataLength)
                        return $"data is {dataLength} bytes but the header says {f.BlockCount} blocks of {f.BlockSize}";
                }
                if (f.FirstBlock < 0 || f.FirstBlock > long.MaxValue - f.BlockCount)
                    return $"first block {f.FirstBlock} is out of range";
                // A device writes at byte FirstBlock * BlockSize: every byte offset of the range, and the object's
                // capacity in bytes, must fit a long, or the device would compute a wrapped (negative) offset.
                if (f.FirstBlock + f.BlockCount > long.MaxValue / f.BlockSize)
                    return $"blocks [{f.FirstBlock}, {f.FirstBlock + f.BlockCount}) of {f.BlockSize} bytes overflow a 64-bit byte offset";
                if (f.ObjectBlocks > long.MaxValue / f.BlockSize)
                    return $"object capacity of {f.ObjectBlocks} blocks of {f.BlockSize} bytes overflows a 64-bit byte offset";
                return null;
            default:
                return $"unknown transaction kind {(byte)f.Kind}";
        }
    }

    private static uint Checksum(ReadOnlySpan<byte> headerBeforeCrc, ReadOnlySpan<byte> objectId, ReadOnlySpan<byte> tokens, ReadOnlySpan<byte> data)
    {
        var crc = Crc32C.Append(uint.MaxValue, headerBeforeCrc);
        // The object id's length is covered too: otherwise bytes could move between object id and tokens unseen.
        Span<byte> length = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(length, (ushort)objectId.Length);
        crc = Crc32C.Append(crc, length);
        crc = Crc32C.Append(crc, objectId);
        crc = Crc32C.Append(crc, tokens);
        crc = Crc32C.Append(crc, data);
        return ~crc;
    }
}
