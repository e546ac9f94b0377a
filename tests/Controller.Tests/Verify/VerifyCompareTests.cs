using TaggedMirror.Contracts.Api;
using TaggedMirror.Controller.Verify;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller.Tests.Verify;

/// <summary>How verify classifies each block from the mirrors' checksums (actual, recorded), and where it takes the right bytes from.</summary>
public sealed class VerifyCompareTests
{
    private static readonly Mirror D0 = new(0, "d0", "v.d0");
    private static readonly Mirror D1 = new(1, "d1", "v.d1");
    private static readonly Mirror D2 = new(2, "d2", "v.d2");

    private static (Mirror, BlockChecksums) Sums(Mirror m, ulong actual, ulong recorded) => (m, new BlockChecksums(4096, 0, [actual], [recorded]));

    private static List<(string Device, string Kind, string? Source)> Classify(params (Mirror, BlockChecksums)[] answers) =>
        [.. VerifyService.Compare(0, 1, [.. answers]).Select(w => (w.Mirror.DeviceId, w.Kind, w.Source?.DeviceId)).Order()];

    [Fact]
    public void Agreeing_mirrors_with_their_own_records_are_right() =>
        Assert.Empty(Classify(Sums(D0, 7, 7), Sums(D1, 7, 7)));

    [Fact]
    public void A_block_that_changed_behind_its_record_is_corrupt_and_comes_from_the_verified_mirror() =>
        Assert.Equal([("d1", "corrupt", "d0")], Classify(Sums(D0, 7, 7), Sums(D1, 9, 7)));

    [Fact]
    public void A_record_older_than_bytes_the_verified_mirror_also_holds_is_stale() =>
        Assert.Equal([("d1", "stale-checksum", "d0")], Classify(Sums(D0, 7, 7), Sums(D1, 7, 5)));

    [Fact]
    public void Records_older_than_bytes_every_mirror_holds_are_stale_and_each_is_rewritten_from_a_peer() =>
        Assert.Equal([("d0", "stale-checksum", "d1"), ("d1", "stale-checksum", "d0")], Classify(Sums(D0, 7, 4), Sums(D1, 7, 5)));

    [Fact]
    public void Without_a_verified_copy_a_mirror_holding_exactly_what_the_damaged_one_recorded_is_the_source() =>
        // d0 never wrote the block (zeros, no record); d1 wrote zeros there (a copy), then its bytes changed.
        Assert.Equal([("d1", "corrupt", "d0")], Classify(Sums(D0, 3, 0), Sums(D1, 9, 3)));

    [Fact]
    public void A_block_nobody_can_vouch_for_is_reported_without_a_source() =>
        Assert.Equal([("d1", "corrupt", null)], Classify(Sums(D0, 4, 0), Sums(D1, 9, 3)));

    [Fact]
    public void A_block_without_a_record_that_differs_from_the_verified_copy_is_divergent() =>
        Assert.Equal([("d2", "divergent", "d0")], Classify(Sums(D0, 7, 7), Sums(D1, 7, 7), Sums(D2, 8, 0)));

    [Fact]
    public void Two_verified_copies_that_disagree_give_no_source() =>
        Assert.Equal([("d2", "corrupt", null)], Classify(Sums(D0, 7, 7), Sums(D1, 8, 8), Sums(D2, 9, 6)));
}
