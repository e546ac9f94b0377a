using System.Text;
using TaggedMirror.Contracts.Transactions;

namespace TaggedMirror.Contracts.Tests;

public sealed class Crc32CTests
{
    [Fact]
    public void the_check_string_123456789_gives_the_standard_value()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute(Encoding.ASCII.GetBytes("123456789")));
    }

    [Fact]
    public void thirty_two_zero_bytes_give_the_standard_value()
    {
        Assert.Equal(0x8A9136AAu, Crc32C.Compute(new byte[32]));
    }

    [Fact]
    public void thirty_two_ff_bytes_give_the_standard_value()
    {
        var data = new byte[32];
        Array.Fill(data, (byte)0xFF);
        Assert.Equal(0x62A8AB43u, Crc32C.Compute(data));
    }

    [Fact]
    public void the_empty_input_gives_zero()
    {
        // ~0xFFFFFFFF: nothing is fed in, so the finalised value is the inverted seed.
        Assert.Equal(0u, Crc32C.Compute([]));
    }

    [Fact]
    public void compute_matches_a_bitwise_reference_for_lengths_0_to_100_at_every_alignment()
    {
        var random = new Random(20240611);
        var buffer = new byte[100 + 8];
        random.NextBytes(buffer);
        for (var offset = 0; offset < 8; offset++)
        {
            for (var length = 0; length <= 100; length++)
            {
                var data = buffer.AsSpan(offset, length);
                Assert.Equal(Reference(data), Crc32C.Compute(data));
            }
        }
    }

    [Fact]
    public void append_in_pieces_equals_compute_in_one_go_for_random_split_points()
    {
        var random = new Random(7);
        for (var length = 0; length <= 100; length++)
        {
            var data = new byte[length];
            for (var round = 0; round < 20; round++)
            {
                random.NextBytes(data);
                var splits = Enumerable.Range(0, random.Next(1, 5))
                    .Select(_ => random.Next(0, length + 1))
                    .Append(0)
                    .Append(length)
                    .Order()
                    .ToArray();
                var crc = uint.MaxValue;
                for (var i = 1; i < splits.Length; i++)
                    crc = Crc32C.Append(crc, data.AsSpan(splits[i - 1], splits[i] - splits[i - 1]));

                Assert.Equal(Crc32C.Compute(data), ~crc);
                Assert.Equal(Reference(data), ~crc);
            }
        }
    }

    [Fact]
    public void a_flipped_data_bit_changes_the_crc()
    {
        var data = Encoding.ASCII.GetBytes("a block of forty bytes, give or take one");
        var original = Crc32C.Compute(data);
        for (var bit = 0; bit < data.Length * 8; bit++)
        {
            data[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.NotEqual(original, Crc32C.Compute(data));
            data[bit / 8] ^= (byte)(1 << (bit % 8));
        }
    }

    /// <summary>Bit-at-a-time CRC32C (reflected polynomial 0x82F63B78), independent of the code under test.</summary>
    internal static uint Reference(ReadOnlySpan<byte> data)
    {
        var crc = uint.MaxValue;
        foreach (var b in data)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        return ~crc;
    }
}
