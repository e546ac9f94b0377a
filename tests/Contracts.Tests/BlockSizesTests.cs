namespace TaggedMirror.Contracts.Tests;

public sealed class BlockSizesTests
{
    [Fact]
    public void the_limits_are_512_and_65536()
    {
        Assert.Equal(512, BlockSizes.Min);
        Assert.Equal(65536, BlockSizes.Max);
    }

    [Fact]
    public void exactly_the_powers_of_two_from_512_to_65536_are_valid()
    {
        for (var shift = 0; shift < 31; shift++)
        {
            var power = 1 << shift;
            var expected = shift is >= 9 and <= 16;
            Assert.True(expected == BlockSizes.IsValid(power), $"2^{shift} = {power}");
            if (power > 2)
            {
                Assert.False(BlockSizes.IsValid(power - 1), $"{power - 1}");
                Assert.False(BlockSizes.IsValid(power + 1), $"{power + 1}");
            }
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-512)]
    [InlineData(-65536)]
    [InlineData(int.MinValue)]
    [InlineData(int.MaxValue)]
    [InlineData(1536)]
    [InlineData(3072)]
    [InlineData(49152)]
    public void other_sizes_are_invalid(int blockSize)
    {
        Assert.False(BlockSizes.IsValid(blockSize));
    }

    [Fact]
    public void no_value_between_the_limits_other_than_a_power_of_two_is_valid()
    {
        int[] valid = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];
        for (var size = 0; size <= 70000; size++)
            Assert.Equal(valid.Contains(size), BlockSizes.IsValid(size));
    }
}
