using FsCheck;
using FsCheck.Xunit;
using TaggedMirror.Contracts.Transactions;

namespace TaggedMirror.Contracts.Tests;

/// <summary>
/// Properties of <see cref="TransactionCodec"/> over generated transactions. Every transaction is built from plain
/// generated numbers and arrays (<see cref="Valid"/>), so FsCheck shrinks a failure to the smallest numbers, object
/// id, tokens and mutations that still break it. The codec's own way to fail is <c>TryRead</c> returning false with a
/// reason: it must never throw, read out of range or allocate more than that reason.
/// </summary>
public sealed class TransactionCodecProperties
{
    /// <summary>What one <c>TryRead</c> may allocate: its error string, nothing in proportion to the input.</summary>
    private const long MaxReadAllocation = 2048;

    private static readonly TransactionKind[] Kinds =
        [TransactionKind.Write, TransactionKind.Append, TransactionKind.Repair, TransactionKind.Barrier, TransactionKind.Fence, TransactionKind.Delete, TransactionKind.Zero];

    [Property(MaxTest = 500)]
    public bool any_valid_transaction_round_trips_every_field(
        byte kind, DoNotSize<int> controller, DoNotSize<int> epoch, DoNotSize<long> seq, long firstBlock, byte blockShift, PositiveInt blockCount,
        long objectBlocks, long ownerEpoch, ushort flags, byte[] objectId, long[] tokens, int dataSeed)
    {
        var t = Valid(kind, new Tag(controller.Item, epoch.Item, seq.Item), firstBlock, blockShift, blockCount.Get, objectBlocks, ownerEpoch, flags, objectId, tokens, dataSeed);
        var (ok, fields, error, _) = Read(t.Parts);
        return ok && error is null && fields == t.Fields
            && Enumerable.Range(0, tokens.Length).All(i => TransactionCodec.ReadToken(t.Parts[2], i) == tokens[i]);
    }

    /// <summary>
    /// Bits flipped, bytes set, inserted or deleted, parts cut short, and bytes moved across a part boundary (which
    /// keeps the CRC's input the same): the result is the original transaction when the bytes are unchanged and a
    /// refusal otherwise (short of a CRC32C collision, 2^-32 for a random change).
    /// </summary>
    [Property(MaxTest = 1000)]
    public bool a_mutated_transaction_reads_as_itself_when_unchanged_and_is_refused_otherwise(
        byte kind, int controller, int epoch, long seq, long firstBlock, byte blockShift, PositiveInt blockCount,
        long objectBlocks, long ownerEpoch, ushort flags, byte[] objectId, long[] tokens, int dataSeed,
        NonEmptyArray<(byte Part, byte Op, int At, byte Value)> mutations)
    {
        var t = Valid(kind, new Tag(controller, epoch, seq), firstBlock, blockShift, blockCount.Get, objectBlocks, ownerEpoch, flags, objectId, tokens, dataSeed);
        var parts = t.Parts.Select(p => p.ToList()).ToArray();
        foreach (var m in mutations.Get)
            Mutate(parts, m.Part % 4, m.Op % 6, m.At, m.Value);
        var mutated = parts.Select(p => p.ToArray()).ToArray();

        var (ok, fields, error, allocated) = Read(mutated);
        var unchanged = mutated.Zip(t.Parts).All(p => p.First.AsSpan().SequenceEqual(p.Second));
        return allocated <= MaxReadAllocation
            && (unchanged ? ok && fields == t.Fields && error is null : !ok && !string.IsNullOrEmpty(error));
    }

    /// <summary>
    /// Bytes moved from the end of one part to the start of the next, or back: the CRC's input stays the same, so
    /// the object id's length in the CRC, the token length rule and the data length rule must catch every move.
    /// Moves of whole tokens (multiples of 8 bytes) are drawn half the time, since they pass the token length rule.
    /// </summary>
    [Property(MaxTest = 1000)]
    public bool bytes_moved_across_a_part_boundary_are_refused(
        byte kind, int controller, int epoch, long seq, long firstBlock, byte blockShift, PositiveInt blockCount,
        long objectBlocks, long ownerEpoch, ushort flags, byte[] objectId, long[] tokens, int dataSeed,
        byte boundary, PositiveInt count, bool wholeTokens, bool backward)
    {
        var t = Valid(kind, new Tag(controller, epoch, seq), firstBlock, blockShift, blockCount.Get, objectBlocks, ownerEpoch, flags, objectId, tokens, dataSeed);
        var parts = t.Parts.Select(p => p.ToList()).ToArray();
        var (from, to) = (parts[boundary % 3], parts[boundary % 3 + 1]);
        var n = wholeTokens ? 8 * count.Get : count.Get;
        if (backward)
        {
            n = Math.Min(n, to.Count);
            from.AddRange(to.GetRange(0, n));
            to.RemoveRange(0, n);
        }
        else
        {
            n = Math.Min(n, from.Count);
            to.InsertRange(0, from.GetRange(from.Count - n, n));
            from.RemoveRange(from.Count - n, n);
        }

        var (ok, fields, error, allocated) = Read([.. parts.Select(p => p.ToArray())]);
        return allocated <= MaxReadAllocation && (n == 0 ? ok && fields == t.Fields : !ok && !string.IsNullOrEmpty(error));
    }

    /// <summary>Random bytes in every part, the header's version byte and length often right so the CRC check is reached.</summary>
    [Property(MaxTest = 1000)]
    public bool random_bytes_are_refused_with_a_reason_and_no_exception(byte[] header, byte[] objectId, byte[] tokens, byte[] data, byte shape)
    {
        header = (shape % 3) switch
        {
            0 => header,
            1 => [1, .. header.Concat(new byte[TransactionHeader.SizeV1]).Take(TransactionHeader.SizeV1 - 1)],
            _ => [TransactionHeader.CurrentVersion, .. header.Concat(new byte[TransactionHeader.Size]).Take(TransactionHeader.Size - 1)],
        };
        var (ok, fields, error, allocated) = Read([header, objectId, tokens, data]);
        return !ok && fields == default && !string.IsNullOrEmpty(error) && allocated <= MaxReadAllocation;
    }

    /// <summary>
    /// Any field values at all (unknown kinds, negative or huge numbers) under a correct CRC: whatever the codec
    /// accepts is safe for a device to act on, checked here independently of the codec's own rules, with checked
    /// arithmetic for every byte offset the device computes.
    /// </summary>
    [Property(MaxTest = 2000)]
    public bool whatever_the_codec_accepts_is_safe_to_apply(
        byte kind, DoNotSize<long> firstBlock, int blockCount, int blockSize, DoNotSize<long> objectBlocks, long ownerEpoch,
        byte[] objectId, byte[] tokens, byte pick, bool sizeDataFromHeader)
    {
        // Field values near the limits the rules guard, so acceptance and refusal both happen often.
        var size = (pick % 4) switch { 0 => blockSize, _ => 512 << (Math.Abs(blockSize % 9)) };
        var count = (pick % 3) switch { 0 => blockCount, _ => Math.Abs(blockCount % 5) };
        var first = (pick % 5) switch { 0 => firstBlock.Item, 1 => long.MaxValue / Math.Max(1, size) - count - (firstBlock.Item & 3), _ => firstBlock.Item & 0xFFFF };
        var capacity = (pick % 7) switch { 0 => objectBlocks.Item, 1 => long.MaxValue / Math.Max(1, size) + (objectBlocks.Item & 1), _ => objectBlocks.Item & 0xFFFF };
        var fields = new TransactionHeader((TransactionKind)(kind % 9), new Tag(1, 2, 3), first, count, size, capacity, TransactionFlags.None, ownerEpoch);
        var dataLength = sizeDataFromHeader && fields.DataLength is >= 0 and <= 1 << 20 ? (int)fields.DataLength : Math.Abs(blockCount % 3);
        var data = new byte[dataLength];
        var header = new byte[TransactionHeader.Size];
        TransactionCodec.WriteHeader(header, fields, objectId, tokens, data);

        var (ok, read, error, allocated) = Read([header, objectId, tokens, data]);
        if (allocated > MaxReadAllocation) return false;
        if (!ok) return !string.IsNullOrEmpty(error);
        if (read != fields || tokens.Length % 8 != 0) return false;
        return read.Kind switch
        {
            TransactionKind.Barrier => data.Length == 0,
            TransactionKind.Fence or TransactionKind.Delete => objectId.Length > 0 && data.Length == 0 && read.BlockCount == 0 && read.OwnerEpoch > 0,
            TransactionKind.Write or TransactionKind.Append or TransactionKind.Repair or TransactionKind.Zero => SafeDataTransaction(read, objectId.Length, data.Length),
            _ => false,
        };
    }

    private static bool SafeDataTransaction(in TransactionHeader h, int objectIdLength, int dataLength)
    {
        if (objectIdLength == 0 || h.BlockCount <= 0 || h.FirstBlock < 0 || h.ObjectBlocks <= 0 || h.OwnerEpoch < 0) return false;
        // A zero's blocks are implied: it carries nothing.
        if (!BlockSizes.IsValid(h.BlockSize) || (h.Kind == TransactionKind.Zero ? dataLength != 0 : (long)h.BlockCount * h.BlockSize != dataLength)) return false;
        try
        {
            // The byte offsets a device computes: the range's first and past-the-end bytes, and the capacity in bytes.
            _ = checked(h.FirstBlock * h.BlockSize);
            _ = checked((h.FirstBlock + h.BlockCount) * h.BlockSize);
            _ = checked(h.ObjectBlocks * h.BlockSize);
            return true;
        }
        catch (OverflowException)
        {
            return false;
        }
    }

    private sealed record ValidTransaction(TransactionHeader Fields, byte[][] Parts);

    /// <summary>
    /// A transaction the codec must accept, of kind <c>kind % 7</c>, with data under 64 KiB. Barriers keep whatever
    /// block fields they were given (nothing reads them); fences and deletes have no blocks and a positive owner epoch;
    /// zeroes have blocks and no data.
    /// </summary>
    private static ValidTransaction Valid(
        byte kind, Tag tag, long firstBlock, byte blockShift, int blockCount, long objectBlocks, long ownerEpoch, ushort flags,
        byte[] objectId, long[] tokens, int dataSeed)
    {
        var k = Kinds[kind % Kinds.Length];
        var blockSize = 512 << (blockShift % 8);
        var nonEmptyId = objectId.Length == 0 ? [0] : objectId;
        var fields = k switch
        {
            TransactionKind.Barrier => new TransactionHeader(k, tag, firstBlock, blockCount, blockSize, objectBlocks, (TransactionFlags)flags, ownerEpoch),
            TransactionKind.Fence or TransactionKind.Delete => new TransactionHeader(k, tag, firstBlock, 0, blockSize, objectBlocks, (TransactionFlags)flags, 1 + (ownerEpoch & long.MaxValue) % long.MaxValue),
            _ => DataFields(k, tag, firstBlock, blockSize, blockCount, objectBlocks, ownerEpoch, (TransactionFlags)flags),
        };
        byte[] id = k == TransactionKind.Barrier ? objectId : nonEmptyId;
        var data = new byte[(int)(k is TransactionKind.Barrier or TransactionKind.Fence or TransactionKind.Delete or TransactionKind.Zero ? 0 : fields.DataLength)];
        new Random(dataSeed).NextBytes(data);
        var tokenBytes = new byte[tokens.Length * 8];
        TransactionCodec.WriteTokens(tokens, tokenBytes);
        var header = new byte[TransactionHeader.Size];
        TransactionCodec.WriteHeader(header, fields, id, tokenBytes, data);
        return new ValidTransaction(fields, [header, id, tokenBytes, data]);
    }

    private static TransactionHeader DataFields(
        TransactionKind kind, Tag tag, long firstBlock, int blockSize, int blockCount, long objectBlocks, long ownerEpoch, TransactionFlags flags)
    {
        var count = 1 + (blockCount - 1) % Math.Max(1, 65536 / blockSize);
        var lastByteBlock = long.MaxValue / blockSize;
        return new TransactionHeader(kind, tag,
            (firstBlock & long.MaxValue) % (lastByteBlock - count + 1),
            count,
            blockSize,
            1 + (objectBlocks & long.MaxValue) % lastByteBlock,
            flags,
            ownerEpoch & long.MaxValue);
    }

    // Ops: 0 flip a bit, 1 set a byte, 2 cut the part short, 3 insert a byte, 4 delete a byte, 5 move bytes from the
    // end of this part to the start of the next (or back from the next), which leaves the CRC's input unchanged.
    private static void Mutate(List<byte>[] parts, int part, int op, int at, byte value)
    {
        var p = parts[part];
        var i = p.Count == 0 ? 0 : (int)((uint)at % (uint)p.Count);
        switch (op)
        {
            case 0 when p.Count > 0: p[i] ^= (byte)(1 << (value % 8)); break;
            case 1 when p.Count > 0: p[i] = value; break;
            case 2: p.RemoveRange(i, p.Count - i); break;
            case 3: p.Insert((int)((uint)at % (uint)(p.Count + 1)), value); break;
            case 4 when p.Count > 0: p.RemoveAt(i); break;
            case 5 when part < 3:
                var next = parts[part + 1];
                var n = value % 17;
                if ((at & 1) == 0)
                {
                    n = Math.Min(n, p.Count);
                    next.InsertRange(0, p.GetRange(p.Count - n, n));
                    p.RemoveRange(p.Count - n, n);
                }
                else
                {
                    n = Math.Min(n, next.Count);
                    p.AddRange(next.GetRange(0, n));
                    next.RemoveRange(0, n);
                }
                break;
        }
    }

    private static (bool Ok, TransactionHeader Fields, string? Error, long Allocated) Read(byte[][] parts)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var ok = TransactionCodec.TryRead(parts[0], parts[1], parts[2], parts[3], out var fields, out var error);
        return (ok, fields, error, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
