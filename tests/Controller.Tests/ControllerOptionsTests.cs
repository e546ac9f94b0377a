namespace TaggedMirror.Controller.Tests;

/// <summary>Settings a controller must refuse at start rather than run with.</summary>
public sealed class ControllerOptionsTests
{
    [Theory]
    [InlineData(0L)]
    [InlineData(-1L)]
    [InlineData(long.MinValue)]
    [InlineData(16L * 1024 * 1024 + 1)]
    [InlineData(long.MaxValue)]
    public void a_resync_batch_no_device_read_can_carry_is_refused(long bytes)
    {
        var options = new ControllerOptions { ResyncBatchBytes = bytes };
        var ex = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.Contains("ResyncBatchBytes", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(1024L * 1024)]
    [InlineData(16L * 1024 * 1024)]
    public void a_resync_batch_within_one_device_read_is_taken(long bytes)
    {
        new ControllerOptions { ResyncBatchBytes = bytes }.Validate();
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(5001)]
    [InlineData(int.MaxValue)]
    public void a_decision_interval_below_zero_or_above_five_seconds_is_refused(int milliseconds)
    {
        var options = new ControllerOptions { DecideInterval = TimeSpan.FromMilliseconds(milliseconds) };
        var ex = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.Contains("DecideInterval", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(200)]
    [InlineData(5000)]
    public void a_decision_interval_from_zero_to_five_seconds_is_taken(int milliseconds)
    {
        new ControllerOptions { DecideInterval = TimeSpan.FromMilliseconds(milliseconds) }.Validate();
    }
}
