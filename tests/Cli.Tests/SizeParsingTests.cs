using TaggedMirror.Cli;
using TaggedMirror.Cli.Commands;

namespace TaggedMirror.Cli.Tests;

/// <summary>Sizes as operators type them (<c>tm create --size</c>, <c>tm verify --max-rate</c>), at their limits.</summary>
public sealed class SizeParsingTests
{
    [Theory]
    [InlineData("4096", 4096L)]
    [InlineData("1", 1L)]
    [InlineData(" 16MiB ", 16L << 20)]
    [InlineData("16 MiB", 16L << 20)]
    [InlineData("16m", 16L << 20)]
    [InlineData("3K", 3L << 10)]
    [InlineData("2GiB", 2L << 30)]
    [InlineData("1TiB", 1L << 40)]
    [InlineData("1t", 1L << 40)]
    [InlineData("9223372036854775807", long.MaxValue)]
    [InlineData("8388607TiB", 8388607L << 40)]
    public void a_size_is_bytes_or_a_whole_number_of_binary_units(string text, long bytes) =>
        Assert.Equal(bytes, CommonOptions.ParseSize(text, "--size"));

    [Theory]
    [InlineData("0")]
    [InlineData("0MiB")]
    [InlineData("-1")]
    [InlineData("-4KiB")]
    [InlineData("+4")]
    [InlineData("1.5GiB")]
    [InlineData("1e6")]
    [InlineData("")]
    [InlineData("MiB")]
    [InlineData("4 PiB")]
    [InlineData("16MB")]
    [InlineData("9223372036854775808")]
    [InlineData("8388608TiB")]
    [InlineData("99999999999999999999999")]
    public void anything_else_is_refused_naming_the_option(string text)
    {
        var ex = Assert.Throws<CliException>(() => CommonOptions.ParseSize(text, "--size"));
        Assert.Equal($"--size '{text}' is not a size: use bytes, or a whole number with KiB, MiB, GiB or TiB", ex.Message);
    }

    [Fact]
    public void zero_is_a_size_only_where_it_means_no_limit()
    {
        Assert.Equal(0, CommonOptions.ParseSize("0", "--max-rate", allowZero: true));
        Assert.Throws<CliException>(() => CommonOptions.ParseSize("-1", "--max-rate", allowZero: true));
    }

    [Theory]
    [InlineData("d0,d1", new[] { "d0", "d1" })]
    [InlineData(" d0 , d1 ,d2,", new[] { "d0", "d1", "d2" })]
    public void a_device_list_is_comma_separated(string text, string[] devices) =>
        Assert.Equal(devices, CommonOptions.ParseDevices(text, "--mirrors"));

    [Theory]
    [InlineData("d0,D1", "D1")]
    [InlineData("d0,../d1", "../d1")]
    [InlineData("d0,d 1", "d 1")]
    public void a_device_id_that_is_not_a_name_is_refused(string text, string bad)
    {
        var ex = Assert.Throws<CliException>(() => CommonOptions.ParseDevices(text, "--mirrors"));
        Assert.Equal($"device id in --mirrors '{bad}' is not valid: use 1 to 48 lower-case letters, digits or dashes", ex.Message);
    }
}
