using System.Text;
using TaggedMirror.Contracts.Intake;

namespace TaggedMirror.Contracts.Tests;

public sealed class IntakeCodecTests
{
    private static readonly byte[] Key = Encoding.UTF8.GetBytes("vol-1");
    private static readonly byte[] Data = [.. Enumerable.Range(0, 4096).Select(i => (byte)i)];

    [Fact]
    public void a_request_reads_back_as_written()
    {
        var d = IntakeCodec.Decode(Key, IntakeCodec.EncodeRequest("p-1", "r:1", 7, Data), Data);
        Assert.Null(d.Error);
        Assert.Equal(("vol-1", "p-1", "r:1", 7L), (d.Volume, d.ProducerId, d.RequestId, d.Request!.FirstBlock));
        Assert.Same(Data, d.Data);
    }

    [Fact]
    public void an_outcome_reads_back_as_written()
    {
        var o = new IntakeOutcome("p", "r", "v", true, "1:2:3", 4, 5, 2, 2, null);
        Assert.Equal(o, IntakeCodec.DecodeOutcome(IntakeCodec.EncodeOutcome(o)));
        Assert.Null(IntakeCodec.DecodeOutcome("not json"u8));
    }

    [Fact]
    public void a_missing_or_unreadable_envelope_is_refused_without_ids()
    {
        foreach (var envelope in new byte[]?[] { null, [], "{"u8.ToArray(), "null"u8.ToArray(), "[1]"u8.ToArray(), new byte[4097] })
        {
            var d = IntakeCodec.Decode(Key, envelope, Data);
            Assert.NotNull(d.Error);
            Assert.Null(d.Request);
            Assert.Null(d.RequestId);
        }
    }

    [Fact]
    public void an_envelope_with_a_bad_field_is_refused_with_its_ids_when_they_are_valid()
    {
        var d = IntakeCodec.Decode(Key, """{"version":1,"producerId":"p","requestId":"r","firstBlock":"x","dataCrc32C":0}"""u8.ToArray(), Data);
        Assert.Contains("not a valid request envelope", d.Error, StringComparison.Ordinal);
        Assert.Equal(("p", "r"), (d.ProducerId, d.RequestId));
    }

    [Theory]
    [InlineData("", "r", "producer id")]
    [InlineData("p/q", "r", "producer id")]
    [InlineData("p", "a/b", "request id")]
    [InlineData("p", "-r", "request id")]
    public void invalid_ids_are_refused(string producer, string request, string why)
    {
        var d = IntakeCodec.Decode(Key, IntakeCodec.EncodeRequest(producer, request, 0, Data), Data);
        Assert.Contains(why, d.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void ids_are_at_most_128_characters()
    {
        Assert.True(IntakeCodec.IsValidId(new string('a', 128)));
        Assert.False(IntakeCodec.IsValidId(new string('a', 129)));
    }

    [Fact]
    public void a_negative_first_block_an_empty_write_damaged_data_and_a_bad_key_are_refused()
    {
        Assert.Contains("negative", IntakeCodec.Decode(Key, IntakeCodec.EncodeRequest("p", "r", -1, Data), Data).Error, StringComparison.Ordinal);
        Assert.Contains("negative", IntakeCodec.Decode(Key, IntakeCodec.EncodeRequest("p", "r", long.MinValue, Data), Data).Error, StringComparison.Ordinal);
        Assert.Contains("empty", IntakeCodec.Decode(Key, IntakeCodec.EncodeRequest("p", "r", 0, []), []).Error, StringComparison.Ordinal);
        Assert.Contains("empty", IntakeCodec.Decode(Key, IntakeCodec.EncodeRequest("p", "r", 0, []), null).Error, StringComparison.Ordinal);
        var damaged = (byte[])Data.Clone();
        damaged[100] ^= 1;
        Assert.Contains("CRC32C", IntakeCodec.Decode(Key, IntakeCodec.EncodeRequest("p", "r", 0, Data), damaged).Error, StringComparison.Ordinal);
        foreach (var key in new byte[]?[] { null, [], "Vol"u8.ToArray(), [0xff, 0xfe], Encoding.UTF8.GetBytes(new string('a', 49)) })
            Assert.Contains("volume name", IntakeCodec.Decode(key, IntakeCodec.EncodeRequest("p", "r", 0, Data), Data).Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 4096, null)]
    [InlineData(15, 4096, null)]
    [InlineData(0, 16 * 4096, null)]
    [InlineData(16, 4096, "outside")]
    [InlineData(15, 2 * 4096, "outside")]
    [InlineData(long.MaxValue, 4096, "outside")]
    [InlineData(long.MaxValue - 1, 2 * 4096, "outside")]
    [InlineData(-1, 4096, "outside")]
    [InlineData(long.MinValue, 4096, "outside")]
    [InlineData(0, 0, "empty")]
    [InlineData(0, 4095, "whole number")]
    [InlineData(0, 4097, "whole number")]
    [InlineData(0, 32 * 4096 + 4096, "more than")]
    public void the_checks_against_the_volume_hold_at_their_limits(long firstBlock, int bytes, string? why)
    {
        var error = IntakeCodec.CheckAgainstVolume("v", firstBlock, bytes, 4096, 16, 32 * 4096);
        if (why is null) Assert.Null(error);
        else Assert.Contains(why, error, StringComparison.Ordinal);
    }

    [Fact]
    public void flipping_any_bit_of_the_envelope_never_throws_and_any_bit_of_the_data_is_refused()
    {
        var envelope = IntakeCodec.EncodeRequest("p", "r", 3, Data);
        for (var bit = 0; bit < envelope.Length * 8; bit++)
        {
            var flipped = (byte[])envelope.Clone();
            flipped[bit / 8] ^= (byte)(1 << (bit % 8));
            // The envelope has no checksum of its own (Kafka's record CRC covers it in transit): a flip that leaves valid
            // JSON with other values reads as another request, anything else is refused; nothing throws.
            _ = IntakeCodec.Decode(Key, flipped, Data);
        }
        var data = (byte[])Data.Clone();
        for (var bit = 0; bit < 64 * 8; bit++)
        {
            data[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.Contains("CRC32C", IntakeCodec.Decode(Key, envelope, data).Error, StringComparison.Ordinal);
            data[bit / 8] ^= (byte)(1 << (bit % 8));
        }
    }

    [Fact]
    public void the_request_key_is_producer_slash_request()
    {
        Assert.Equal("p-1/r:1", IntakeCodec.RequestKey("p-1", "r:1"));
    }
}
