using TaggedMirror.Contracts;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller.Tests.Fanout;

/// <summary>
/// A copy leaves the device's flow-control backlog once: the write path takes its bytes off only when an
/// acknowledgement finds the mirror still pending (<see cref="WritePipeline.OnApplied"/>).
/// </summary>
public sealed class InflightWriteTests
{
    private static InflightWrite SentToBoth()
    {
        var volume = new Volume("v", 4096, 16, 1, [new Mirror(0, "d0", "v.d0"), new Mirror(1, "d1", "v.d1")]);
        var write = new InflightWrite(new Tag(1, 1, 7), volume, 0, 1, 4096, targets: 0b11);
        write.MarkSent(0);
        write.MarkSent(1);
        return write;
    }

    [Fact]
    public void a_repeated_acknowledgement_is_not_pending_and_settles_nothing()
    {
        var write = SentToBoth();
        Assert.Equal((true, false), write.MarkApplied(0, 11));
        Assert.Equal((false, false), write.MarkApplied(0, 11));
        Assert.Equal((true, true), write.MarkApplied(1, 12));
        Assert.Equal((false, false), write.MarkApplied(1, 12));
        Assert.Equal((false, false), write.MarkApplied(0, 11));
        Assert.True(write.NothingPending);
    }

    [Fact]
    public void an_acknowledgement_of_a_copy_already_counted_as_failed_is_not_pending()
    {
        var write = SentToBoth();
        Assert.Equal((true, false), write.MarkFailed(1));
        Assert.Equal((false, false), write.MarkApplied(1, 12));
        Assert.False(write.NothingPending);
        Assert.Equal((true, true), write.MarkApplied(0, 11));
        Assert.False(write.ReachedEveryMirror);
    }

    [Fact]
    public void an_acknowledgement_from_a_mirror_the_write_was_not_sent_to_is_not_pending()
    {
        var write = SentToBoth();
        var repair = new InflightWrite(new Tag(1, 1, 8), write.Volume, 0, 1, 4096, targets: 0b10);
        repair.MarkSent(1);
        Assert.Equal((false, false), repair.MarkApplied(0, 11));
        Assert.Equal((true, true), repair.MarkApplied(1, 12));
    }
}
