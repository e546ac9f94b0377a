using System.Buffers.Binary;
using System.Text;
using TaggedMirror.Contracts.Transactions;

namespace TaggedMirror.Contracts.Tests;

public sealed class TransactionCodecTests
{
    private static readonly byte[] ObjectId = Encoding.UTF8.GetBytes("vol-a.dev-1");

    private sealed record Encoded(byte[] Header, byte[] ObjectId, byte[] Tokens, byte[] Data);

    private static byte[] Tokens(params long[] tokens)
    {
        var bytes = new byte[tokens.Length * 8];
        Assert.Equal(bytes.Length, TransactionCodec.WriteTokens(tokens, bytes));
        return bytes;
    }

    private static byte[] RandomData(int length, int seed = 1)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static Encoded Encode(in TransactionHeader fields, byte[] objectId, byte[] tokens, byte[] data)
    {
        var header = new byte[TransactionHeader.Size];
        TransactionCodec.WriteHeader(header, fields, objectId, tokens, data);
        return new Encoded(header, objectId, tokens, data);
    }

    private static (bool Ok, TransactionHeader Fields, string? Error) Read(Encoded e)
    {
        var ok = TransactionCodec.TryRead(e.Header, e.ObjectId, e.Tokens, e.Data, out var fields, out var error);
        return (ok, fields, error);
    }

    private static TransactionHeader Write(
        int blockCount = 1, int blockSize = 512, long firstBlock = 10, long objectBlocks = 1024,
        TransactionKind kind = TransactionKind.Write) =>
        new(kind, new Tag(3, 7, 42), firstBlock, blockCount, blockSize, objectBlocks);

    private static string RejectedWith(in TransactionHeader fields, byte[] objectId, byte[] tokens, byte[] data)
    {
        var (ok, _, error) = Read(Encode(fields, objectId, tokens, data));
        Assert.False(ok);
        Assert.NotNull(error);
        return error;
    }

    [Theory]
    [InlineData(TransactionKind.Write)]
    [InlineData(TransactionKind.Append)]
    [InlineData(TransactionKind.Repair)]
    public void a_data_transaction_round_trips_every_field(TransactionKind kind)
    {
        var fields = new TransactionHeader(
            kind, new Tag(int.MaxValue, 123_456, long.MaxValue - 5), 0x0001_0203_0405_0607, 3, 4096, 0x0007_1122_3344_5566);
        var tokens = Tokens(1, -1, long.MaxValue, long.MinValue, 0x0A0B0C0D0E0F1011);
        var data = RandomData(3 * 4096);

        var (ok, read, error) = Read(Encode(fields, ObjectId, tokens, data));

        Assert.True(ok, error);
        Assert.Null(error);
        Assert.Equal(fields, read);
        Assert.Equal(kind, read.Kind);
        Assert.Equal(new Tag(int.MaxValue, 123_456, long.MaxValue - 5), read.Tag);
        Assert.Equal(0x0001_0203_0405_0607, read.FirstBlock);
        Assert.Equal(3, read.BlockCount);
        Assert.Equal(4096, read.BlockSize);
        Assert.Equal(0x0007_1122_3344_5566, read.ObjectBlocks);
        Assert.Equal(TransactionFlags.None, read.Flags);
    }

    [Fact]
    public void a_barrier_with_epoch_closed_round_trips_every_field()
    {
        var fields = new TransactionHeader(
            TransactionKind.Barrier, new Tag(9, 4, 1_000_000), 0, 0, 0, 0, TransactionFlags.EpochClosed);

        var (ok, read, error) = Read(Encode(fields, [], Tokens(77, 78), []));

        Assert.True(ok, error);
        Assert.Equal(fields, read);
        Assert.Equal(TransactionKind.Barrier, read.Kind);
        Assert.Equal(TransactionFlags.EpochClosed, read.Flags);
        Assert.Equal(new Tag(9, 4, 1_000_000), read.Tag);
    }

    [Fact]
    public void a_barrier_without_flags_reads_back_without_epoch_closed()
    {
        var fields = new TransactionHeader(TransactionKind.Barrier, new Tag(9, 4, 5), 0, 0, 0, 0);
        var (ok, read, error) = Read(Encode(fields, [], [], []));
        Assert.True(ok, error);
        Assert.Equal(TransactionFlags.None, read.Flags);
    }

    [Fact]
    public void tokens_round_trip_through_write_tokens_and_read_token()
    {
        long[] tokens = [0, 1, -1, long.MaxValue, long.MinValue, 0x0102030405060708, 123_456_789_012];
        var bytes = new byte[tokens.Length * 8];

        Assert.Equal(tokens.Length * 8, TransactionCodec.WriteTokens(tokens, bytes));
        for (var i = 0; i < tokens.Length; i++)
            Assert.Equal(tokens[i], TransactionCodec.ReadToken(bytes, i));
    }

    [Fact]
    public void tokens_are_encoded_as_little_endian_int64s()
    {
        var bytes = new byte[16];
        TransactionCodec.WriteTokens([0x0102030405060708, -2], bytes);
        Assert.Equal(new byte[] { 8, 7, 6, 5, 4, 3, 2, 1, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }, bytes);
    }

    [Fact]
    public void no_tokens_use_no_bytes()
    {
        Assert.Equal(0, TransactionCodec.WriteTokens([], []));
    }

    [Fact]
    public void the_header_follows_the_documented_little_endian_layout_and_crc_coverage()
    {
        var fields = new TransactionHeader(
            TransactionKind.Repair, new Tag(0x01020304, 0x05060708, 0x090A0B0C0D0E0F10),
            0x1112131415161718, 2, 1024, 0x2122232425262728, TransactionFlags.EpochClosed, 0x3132333435363738);
        var tokens = Tokens(5);
        var data = RandomData(2048);
        var header = Encode(fields, ObjectId, tokens, data).Header;

        Assert.Equal(TransactionHeader.CurrentVersion, header[0]);
        Assert.Equal((byte)TransactionKind.Repair, header[1]);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(2)));
        Assert.Equal(Enumerable.Range(1, 16).Select(i => (byte)i), header[4..20]);
        Assert.Equal(0x1112131415161718, BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(20)));
        Assert.Equal(2, BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(28)));
        Assert.Equal(1024, BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(32)));
        Assert.Equal(0x2122232425262728, BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(36)));
        Assert.Equal(0x3132333435363738, BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(44)));
        Assert.Equal(56, header.Length);

        byte[] covered = [.. header[..TransactionHeader.CrcOffset], (byte)ObjectId.Length, (byte)(ObjectId.Length >> 8), .. ObjectId, .. tokens, .. data];
        Assert.Equal(Crc32CTests.Reference(covered), BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(52)));
    }

    [Fact]
    public void a_version_1_header_without_owner_epoch_still_reads_as_owner_epoch_0()
    {
        // Written by hand in version 1's layout: 48 bytes, the CRC at 44 right after the object capacity.
        var data = RandomData(1024);
        var v1 = new byte[TransactionHeader.SizeV1];
        v1[0] = 1;
        v1[1] = (byte)TransactionKind.Write;
        new Tag(3, 7, 42).WriteTo(v1.AsSpan(4));
        BinaryPrimitives.WriteInt64LittleEndian(v1.AsSpan(20), 5);
        BinaryPrimitives.WriteInt32LittleEndian(v1.AsSpan(28), 2);
        BinaryPrimitives.WriteInt32LittleEndian(v1.AsSpan(32), 512);
        BinaryPrimitives.WriteInt64LittleEndian(v1.AsSpan(36), 64);
        var crc = Crc32CTests.Reference([.. v1[..TransactionHeader.CrcOffsetV1], (byte)ObjectId.Length, (byte)(ObjectId.Length >> 8), .. ObjectId, .. data]);
        BinaryPrimitives.WriteUInt32LittleEndian(v1.AsSpan(TransactionHeader.CrcOffsetV1), crc);

        var (ok, fields, error) = Read(new Encoded(v1, ObjectId, [], data));

        Assert.True(ok, error);
        Assert.Equal(new TransactionHeader(TransactionKind.Write, new Tag(3, 7, 42), 5, 2, 512, 64), fields);
        Assert.Equal(0, fields.OwnerEpoch);
    }

    [Fact]
    public void a_version_2_header_cut_to_version_1_length_is_rejected()
    {
        var e = Encode(Write(), ObjectId, [], RandomData(512));
        var (ok, _, error) = Read(e with { Header = e.Header[..TransactionHeader.SizeV1] });
        Assert.False(ok);
        Assert.Contains("expected 56 for version 2", error, StringComparison.Ordinal);
    }

    [Fact]
    public void a_fence_round_trips_with_its_owner_epoch()
    {
        var fields = new TransactionHeader(TransactionKind.Fence, new Tag(2, 9, 0), 0, 0, 4096, 128, OwnerEpoch: long.MaxValue);
        var (ok, read, error) = Read(Encode(fields, ObjectId, Tokens(), []));
        Assert.True(ok, error);
        Assert.Equal(fields, read);
    }

    [Theory]
    [InlineData(0L, 0, 0, "owner epoch must be positive, not 0")]
    [InlineData(-1L, 0, 0, "owner epoch must be positive, not -1")]
    [InlineData(long.MinValue, 0, 0, "owner epoch must be positive")]
    [InlineData(3L, 1, 512, "a fence carries no data")]
    [InlineData(3L, 0, 1, "a fence carries no data")]
    public void a_fence_without_a_positive_owner_epoch_or_with_data_is_rejected(long ownerEpoch, int blockCount, int dataLength, string reason)
    {
        var fields = new TransactionHeader(TransactionKind.Fence, new Tag(2, 9, 0), 0, blockCount, 512, 128, OwnerEpoch: ownerEpoch);
        Assert.Contains(reason, RejectedWith(fields, ObjectId, [], RandomData(dataLength)), StringComparison.Ordinal);
    }

    [Fact]
    public void a_fence_without_object_id_is_rejected()
    {
        var fields = new TransactionHeader(TransactionKind.Fence, new Tag(2, 9, 0), 0, 0, 512, 128, OwnerEpoch: 4);
        Assert.Equal("missing object id", RejectedWith(fields, [], [], []));
    }

    [Fact]
    public void a_delete_round_trips_with_its_tag_owner_epoch_and_tokens()
    {
        var fields = new TransactionHeader(TransactionKind.Delete, new Tag(2, 9, 77), 0, 0, 4096, 128, OwnerEpoch: 5);
        var tokens = Tokens(3, 4);
        var e = Encode(fields, ObjectId, tokens, []);

        var (ok, read, error) = Read(e);

        Assert.True(ok, error);
        Assert.Null(error);
        Assert.Equal(fields, read);
        Assert.Equal(TransactionKind.Delete, read.Kind);
        Assert.Equal((byte)6, e.Header[1]);
        Assert.Equal(4, TransactionCodec.ReadToken(e.Tokens, 1));
    }

    [Theory]
    [InlineData(1, 512)]
    [InlineData(0, 1)]
    [InlineData(0, 512)]
    [InlineData(2, 0)]
    [InlineData(-1, 0)]
    public void a_delete_with_data_or_blocks_is_rejected(int blockCount, int dataLength)
    {
        var fields = new TransactionHeader(TransactionKind.Delete, new Tag(2, 9, 77), 0, blockCount, 512, 128, OwnerEpoch: 5);
        Assert.Equal(
            $"a delete carries no data, but this one says {blockCount} blocks and carries {dataLength} bytes",
            RejectedWith(fields, ObjectId, [], RandomData(dataLength)));
    }

    [Fact]
    public void a_delete_without_object_id_is_rejected()
    {
        var fields = new TransactionHeader(TransactionKind.Delete, new Tag(2, 9, 77), 0, 0, 512, 128, OwnerEpoch: 5);
        Assert.Equal("missing object id", RejectedWith(fields, [], [], []));
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-1L)]
    [InlineData(long.MinValue)]
    public void a_delete_without_a_positive_owner_epoch_is_rejected(long ownerEpoch)
    {
        var fields = new TransactionHeader(TransactionKind.Delete, new Tag(2, 9, 77), 0, 0, 512, 128, OwnerEpoch: ownerEpoch);
        Assert.Equal($"a delete's owner epoch must be positive, not {ownerEpoch}", RejectedWith(fields, ObjectId, [], []));
    }

    [Theory]
    [InlineData(1, 512)]
    [InlineData(8, 4096)]
    // Far more bytes than a transaction's data could carry (2 TiB): a zero carries none.
    [InlineData(int.MaxValue / 2, 4096)]
    public void a_zero_round_trips_without_data_whatever_its_length(int blockCount, int blockSize)
    {
        var fields = Write(blockCount, blockSize, firstBlock: 0, objectBlocks: 1L << 40, kind: TransactionKind.Zero) with { OwnerEpoch = 4 };
        var e = Encode(fields, ObjectId, Tokens(9), []);

        var (ok, read, error) = Read(e);

        Assert.True(ok, error);
        Assert.Equal(fields, read);
        Assert.Equal((byte)7, e.Header[1]);
    }

    [Theory]
    [InlineData(1, 512)]
    [InlineData(1, 1)]
    [InlineData(2, 512)]
    public void a_zero_carrying_data_is_rejected(int blockCount, int dataLength)
    {
        Assert.Equal(
            $"a zero carries no data, but this one carries {dataLength} bytes",
            RejectedWith(Write(blockCount, kind: TransactionKind.Zero), ObjectId, [], RandomData(dataLength)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void a_zero_of_no_blocks_is_rejected(int blockCount)
    {
        Assert.Equal("a zero must cover at least one block", RejectedWith(Write(blockCount, kind: TransactionKind.Zero), ObjectId, [], []));
    }

    [Theory]
    [InlineData(-1L, 1)]
    [InlineData(long.MaxValue, 1)]
    [InlineData(long.MaxValue / 512 - 10, 11)]
    public void a_zero_whose_range_overflows_is_rejected(long firstBlock, int blockCount)
    {
        var error = RejectedWith(Write(blockCount, 512, firstBlock, kind: TransactionKind.Zero), ObjectId, [], []);
        Assert.True(error.Contains("out of range", StringComparison.Ordinal) || error.Contains("overflow", StringComparison.Ordinal), error);
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData(long.MinValue)]
    public void a_write_with_a_negative_owner_epoch_is_rejected(long ownerEpoch)
    {
        var fields = Write() with { OwnerEpoch = ownerEpoch };
        Assert.Contains("is negative", RejectedWith(fields, ObjectId, [], RandomData(512)), StringComparison.Ordinal);
    }

    [Fact]
    public void write_header_refuses_a_buffer_shorter_than_the_header()
    {
        var fields = Write();
        var data = RandomData(512);
        Assert.Throws<ArgumentException>(() =>
            TransactionCodec.WriteHeader(new byte[TransactionHeader.Size - 1], fields, ObjectId, [], data));
    }

    [Fact]
    public void flipping_any_single_bit_anywhere_is_rejected()
    {
        var e = Encode(Write(), ObjectId.ToArray(), Tokens(11, 12), RandomData(512));
        Assert.True(Read(e).Ok);

        void Check(byte[] buffer, string where, bool isVersionByte)
        {
            for (var bit = 0; bit < buffer.Length * 8; bit++)
            {
                buffer[bit / 8] ^= (byte)(1 << (bit % 8));
                var (ok, _, error) = Read(e);
                buffer[bit / 8] ^= (byte)(1 << (bit % 8));

                Assert.False(ok, $"{where} bit {bit} flipped was accepted");
                Assert.NotNull(error);
                if (isVersionByte && bit < 8)
                    Assert.StartsWith("unknown transaction format version", error, StringComparison.Ordinal);
                else
                    Assert.StartsWith("CRC32C mismatch", error, StringComparison.Ordinal);
            }
        }

        Check(e.Header, "header", isVersionByte: true);
        Check(e.ObjectId, "object id", isVersionByte: false);
        Check(e.Tokens, "tokens", isVersionByte: false);
        Check(e.Data, "data", isVersionByte: false);

        Assert.True(Read(e).Ok);
    }

    [Fact]
    public void a_different_object_id_of_the_same_length_is_rejected()
    {
        var e = Encode(Write(), ObjectId, [], RandomData(512));
        var (ok, _, error) = Read(e with { ObjectId = Encoding.UTF8.GetBytes("vol-a.dev-2") });
        Assert.False(ok);
        Assert.StartsWith("CRC32C mismatch", error, StringComparison.Ordinal);
    }

    [Fact]
    public void a_missing_header_is_rejected()
    {
        var ok = TransactionCodec.TryRead([], ObjectId, [], RandomData(512), out var fields, out var error);
        Assert.False(ok);
        Assert.Equal(default, fields);
        Assert.Equal("missing tm-h header", error);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(44)]
    [InlineData(47)]
    [InlineData(49)]
    [InlineData(96)]
    public void a_header_of_the_wrong_length_is_rejected(int length)
    {
        var e = Encode(Write(), ObjectId, [], RandomData(512));
        var header = new byte[length];
        e.Header.AsSpan(0, Math.Min(length, e.Header.Length)).CopyTo(header);

        var ok = TransactionCodec.TryRead(header, e.ObjectId, e.Tokens, e.Data, out _, out var error);

        Assert.False(ok);
        Assert.Contains($"{length} bytes", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(255)]
    public void a_version_this_code_does_not_read_is_rejected_even_with_a_correct_crc(byte version)
    {
        var e = Encode(Write(), ObjectId, [], RandomData(512));
        e.Header[0] = version;
        var crc = Crc32CTests.Reference([.. e.Header[..TransactionHeader.CrcOffset], (byte)e.ObjectId.Length, (byte)(e.ObjectId.Length >> 8), .. e.ObjectId, .. e.Data]);
        BinaryPrimitives.WriteUInt32LittleEndian(e.Header.AsSpan(TransactionHeader.CrcOffset), crc);

        var (ok, _, error) = Read(e);

        Assert.False(ok);
        Assert.Contains($"unknown transaction format version {version}", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(8)]
    [InlineData(255)]
    public void an_unknown_kind_with_a_correct_crc_is_rejected(byte kind)
    {
        var fields = Write() with { Kind = (TransactionKind)kind };
        var e = Encode(fields, ObjectId, [], RandomData(512));
        Assert.Equal(kind, e.Header[1]);

        var (ok, _, error) = Read(e);

        Assert.False(ok);
        Assert.Equal($"unknown transaction kind {kind}", error);
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(1, 511)]
    [InlineData(1, 513)]
    [InlineData(1, 1024)]
    [InlineData(2, 512)]
    [InlineData(2, 1536)]
    [InlineData(4, 4 * 4096 - 1)]
    public void data_length_not_matching_block_count_times_block_size_is_rejected(int blockCount, int dataLength)
    {
        var blockSize = blockCount == 4 ? 4096 : 512;
        var error = RejectedWith(Write(blockCount, blockSize), ObjectId, [], RandomData(dataLength));
        Assert.Contains($"data is {dataLength} bytes", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-512)]
    [InlineData(1)]
    [InlineData(256)]
    [InlineData(511)]
    [InlineData(513)]
    [InlineData(768)]
    [InlineData(1000)]
    [InlineData(65535)]
    [InlineData(65537)]
    [InlineData(131072)]
    [InlineData(int.MinValue)]
    public void a_block_size_not_a_power_of_two_from_512_to_65536_is_rejected(int blockSize)
    {
        var error = RejectedWith(Write(1, blockSize), ObjectId, [], RandomData(Math.Max(0, blockSize)));
        Assert.Contains($"block size {blockSize}", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(512)]
    [InlineData(65536)]
    public void the_smallest_and_largest_block_sizes_are_accepted(int blockSize)
    {
        var (ok, read, error) = Read(Encode(Write(1, blockSize), ObjectId, [], RandomData(blockSize)));
        Assert.True(ok, error);
        Assert.Equal(blockSize, read.BlockSize);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void a_transaction_without_blocks_is_rejected(int blockCount)
    {
        var error = RejectedWith(Write(blockCount), ObjectId, [], []);
        Assert.Equal("a write must carry at least one block", error);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void a_non_positive_object_capacity_is_rejected(long objectBlocks)
    {
        var error = RejectedWith(Write(objectBlocks: objectBlocks), ObjectId, [], RandomData(512));
        Assert.Equal("object capacity must be positive", error);
    }

    [Theory]
    [InlineData(TransactionKind.Write)]
    [InlineData(TransactionKind.Append)]
    [InlineData(TransactionKind.Repair)]
    public void a_data_transaction_without_object_id_is_rejected(TransactionKind kind)
    {
        var error = RejectedWith(Write(kind: kind), [], [], RandomData(512));
        Assert.Equal("missing object id", error);
    }

    [Theory]
    [InlineData(512)]
    [InlineData(1)]
    public void a_barrier_with_data_is_rejected(int dataLength)
    {
        var barrier = new TransactionHeader(TransactionKind.Barrier, new Tag(1, 2, 3), 0, 0, 0, 0);
        var error = RejectedWith(barrier, [], [], RandomData(dataLength));
        Assert.Equal("a barrier carries no data", error);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(12)]
    [InlineData(17)]
    public void tokens_whose_length_is_not_a_multiple_of_8_are_rejected_even_with_a_correct_crc(int tokenBytes)
    {
        var error = RejectedWith(Write(), ObjectId, RandomData(tokenBytes, seed: 3), RandomData(512));
        Assert.Contains($"is {tokenBytes} bytes, not a multiple of 8", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(TransactionKind.Write, -1L)]
    [InlineData(TransactionKind.Repair, -1L)]
    [InlineData(TransactionKind.Append, -1L)]
    [InlineData(TransactionKind.Append, long.MaxValue)]
    [InlineData(TransactionKind.Write, long.MinValue)]
    [InlineData(TransactionKind.Write, long.MaxValue)]
    [InlineData(TransactionKind.Repair, long.MaxValue - 1)]
    public void a_first_block_out_of_range_is_rejected(TransactionKind kind, long firstBlock)
    {
        var error = RejectedWith(Write(2, 512, firstBlock, kind: kind), ObjectId, [], RandomData(1024));
        Assert.Equal($"first block {firstBlock} is out of range", error);
    }

    [Theory]
    [InlineData(TransactionKind.Write, 512)]
    [InlineData(TransactionKind.Append, 4096)]
    [InlineData(TransactionKind.Repair, 65536)]
    public void the_last_first_block_whose_bytes_fit_a_long_is_accepted(TransactionKind kind, int blockSize)
    {
        // The range ends at byte (first + 2) * blockSize, which must not pass long.MaxValue.
        var first = long.MaxValue / blockSize - 2;
        var fields = Write(2, blockSize, first, kind: kind);
        var (ok, read, error) = Read(Encode(fields, ObjectId, [], RandomData(2 * blockSize)));
        Assert.True(ok, error);
        Assert.Equal(first, read.FirstBlock);
    }

    [Theory]
    [InlineData(TransactionKind.Write, 512, 1)]
    [InlineData(TransactionKind.Append, 4096, 1)]
    [InlineData(TransactionKind.Repair, 65536, 1)]
    [InlineData(TransactionKind.Append, 4096, 3)]     // first * blockSize itself overflows
    [InlineData(TransactionKind.Repair, 512, 1L << 40)]
    public void a_range_whose_byte_offsets_overflow_a_long_is_rejected(TransactionKind kind, int blockSize, long pastLast)
    {
        // first + blockCount does not overflow, first * blockSize (or the range's end in bytes) does.
        var first = long.MaxValue / blockSize - 2 + pastLast;
        var error = RejectedWith(Write(2, blockSize, first, kind: kind), ObjectId, [], RandomData(2 * blockSize));
        Assert.Equal($"blocks [{first}, {first + 2}) of {blockSize} bytes overflow a 64-bit byte offset", error);
    }

    [Theory]
    [InlineData(512, long.MaxValue)]
    [InlineData(4096, long.MaxValue / 4096 + 1)]
    [InlineData(65536, long.MaxValue / 2)]
    public void an_object_capacity_whose_bytes_overflow_a_long_is_rejected(int blockSize, long objectBlocks)
    {
        var error = RejectedWith(Write(1, blockSize, 0, objectBlocks), ObjectId, [], RandomData(blockSize));
        Assert.Equal($"object capacity of {objectBlocks} blocks of {blockSize} bytes overflows a 64-bit byte offset", error);
    }

    [Fact]
    public void a_transaction_refused_for_its_shape_still_gives_the_fields_its_crc_vouches_for()
    {
        // The device reports the tag of a refused copy, so the controller stops waiting for it.
        var fields = Write(1, 4096, long.MaxValue / 4096 + 1, kind: TransactionKind.Append);
        var (ok, read, error) = Read(Encode(fields, ObjectId, [], RandomData(4096)));
        Assert.False(ok);
        Assert.NotNull(error);
        Assert.Equal(fields, read);
    }

    [Fact]
    public void a_transaction_whose_crc_fails_gives_no_fields()
    {
        var e = Encode(Write(), ObjectId, [], RandomData(512));
        e.Data[0] ^= 1;
        var (ok, read, _) = Read(e);
        Assert.False(ok);
        Assert.Equal(default, read);
    }

    [Fact]
    public void a_block_count_whose_bytes_overflow_a_data_length_is_rejected()
    {
        // 2^20 blocks of 2^12 bytes is 2^32 bytes: more than any int data length, and not wrapped into a small one.
        var error = RejectedWith(Write(1 << 20, 4096, 0, 1L << 30), ObjectId, [], RandomData(512));
        Assert.Equal($"{1 << 20} blocks of 4096 bytes overflow the largest data length a transaction carries", error);
    }

    [Fact]
    public void an_append_keeps_the_first_block_the_header_places_it_at()
    {
        var fields = Write(1, 512, 2048, objectBlocks: 1024, kind: TransactionKind.Append);
        var (ok, read, error) = Read(Encode(fields, ObjectId, [], RandomData(512)));
        Assert.True(ok, error);
        Assert.Equal(2048, read.FirstBlock);
    }

    [Fact]
    public void data_length_is_block_count_times_block_size_without_int_overflow()
    {
        Assert.Equal(2_000_000_000L * 65536, Write(2_000_000_000, 65536).DataLength);
    }
}
