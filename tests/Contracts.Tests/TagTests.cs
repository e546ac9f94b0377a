namespace TaggedMirror.Contracts.Tests;

public sealed class TagTests
{
    private static Tag RandomTag(Random random) => new(
        random.Next(0, 4) == 0 ? random.Next(0, 3) : random.Next(),
        random.Next(0, 4) == 0 ? random.Next(0, 3) : random.Next(),
        random.Next(0, 4) == 0 ? random.Next(0, 3) : random.NextInt64());

    private static byte[] Encode(Tag tag)
    {
        var bytes = new byte[Tag.Size];
        tag.WriteTo(bytes);
        return bytes;
    }

    [Fact]
    public void write_to_is_big_endian_controller_epoch_seq()
    {
        var bytes = Encode(new Tag(0x01020304, 0x05060708, 0x090A0B0C0D0E0F10));
        Assert.Equal(Enumerable.Range(1, 16).Select(i => (byte)i), bytes);
    }

    [Fact]
    public void write_to_touches_only_the_first_16_bytes()
    {
        var bytes = new byte[Tag.Size + 4];
        Array.Fill(bytes, (byte)0xAA);
        new Tag(1, 2, 3).WriteTo(bytes);
        Assert.All(bytes[Tag.Size..], b => Assert.Equal(0xAA, b));
    }

    [Fact]
    public void write_to_then_read_from_round_trips()
    {
        var random = new Random(11);
        Tag[] edges = [default, new(int.MaxValue, int.MaxValue, long.MaxValue), new(-1, int.MinValue, long.MinValue), new(1, 0, 1)];
        foreach (var tag in edges.Concat(Enumerable.Range(0, 500).Select(_ => RandomTag(random))))
            Assert.Equal(tag, Tag.ReadFrom(Encode(tag)));
    }

    [Fact]
    public void encoded_tags_sort_like_tags()
    {
        var random = new Random(5);
        var tags = Enumerable.Range(0, 300).Select(_ => RandomTag(random)).ToList();
        tags.AddRange([new(0, 0, 0), new(0, 0, 1), new(0, 1, 0), new(1, 0, 0), new(0, 0, 256), new(0, 256, 0),
            new(int.MaxValue, int.MaxValue, long.MaxValue), new(1, 1, long.MaxValue), new(1, 2, 0)]);

        foreach (var a in tags)
        {
            var ea = Encode(a);
            foreach (var b in tags)
            {
                var expected = Math.Sign(a.CompareTo(b));
                Assert.Equal(expected, Math.Sign(ea.AsSpan().SequenceCompareTo(Encode(b))));
            }
        }
    }

    [Fact]
    public void compare_to_orders_by_controller_then_epoch_then_seq()
    {
        Tag[] ascending = [new(1, 1, 1), new(1, 1, 2), new(1, 2, 0), new(1, 2, 99), new(2, 0, 0), new(2, 0, long.MaxValue), new(3, 0, 0)];
        for (var i = 0; i < ascending.Length; i++)
        {
            Assert.Equal(0, ascending[i].CompareTo(ascending[i]));
            for (var j = i + 1; j < ascending.Length; j++)
            {
                Assert.True(ascending[i].CompareTo(ascending[j]) < 0, $"{ascending[i]} < {ascending[j]}");
                Assert.True(ascending[j].CompareTo(ascending[i]) > 0, $"{ascending[j]} > {ascending[i]}");
            }
        }
    }

    [Fact]
    public void the_text_form_is_controller_colon_epoch_colon_seq()
    {
        Assert.Equal("12:3:4567890123", new Tag(12, 3, 4_567_890_123).ToString());
    }

    [Fact]
    public void to_string_then_try_parse_round_trips()
    {
        var random = new Random(3);
        Tag[] edges = [default, new(int.MaxValue, int.MaxValue, long.MaxValue), new(1, 0, 1)];
        foreach (var tag in edges.Concat(Enumerable.Range(0, 500).Select(_ => RandomTag(random))))
        {
            Assert.True(Tag.TryParse(tag.ToString(), out var parsed), tag.ToString());
            Assert.Equal(tag, parsed);
        }
    }

    [Fact]
    public void try_parse_reads_the_three_parts_in_order()
    {
        Assert.True(Tag.TryParse("7:8:9", out var tag));
        Assert.Equal(new Tag(7, 8, 9), tag);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("1")]
    [InlineData("1:2")]
    [InlineData("1:2:3:4")]
    [InlineData("a:b:c")]
    [InlineData("1:2:x")]
    [InlineData("1:2:-3")]
    [InlineData("-1:2:3")]
    [InlineData("+1:2:3")]
    [InlineData(" 1:2:3")]
    [InlineData("1:2:3 ")]
    [InlineData("1::3")]
    [InlineData("::")]
    [InlineData("1.5:2:3")]
    [InlineData("2147483648:1:1")]
    [InlineData("1:1:9223372036854775808")]
    public void try_parse_rejects_garbage(string? text)
    {
        Assert.False(Tag.TryParse(text, out var tag));
        Assert.Equal(default, tag);
    }
}
