using FsCheck;
using FsCheck.Xunit;
using TaggedMirror.Controller.Reconciliation;

namespace TaggedMirror.Controller.Tests.Reconciliation;

/// <summary>
/// Coalescing of missed writes (<see cref="ResyncPlan"/>), against its promise: exactly the diverged blocks are
/// copied (the union of the chunks is the union of the missed ranges, no block twice), runs are disjoint, chunks fit
/// the limit, extensions stay apart, and every write is completed once, in the chunk holding its last block, so it
/// is recorded as repaired only after all of its blocks were copied.
/// </summary>
public sealed class ResyncPlanProperties
{
    private static List<MissedWrite> Writes((byte First, byte Blocks, bool Extension)[] raw) =>
        [.. raw.Select((w, i) => new MissedWrite($"1:1:{i + 1}", w.First % 64, 1 + (w.Blocks % 12), w.Extension, i % 2 == 0 ? "d0" : "d2"))];

    [Property(MaxTest = 500)]
    public bool chunks_cover_exactly_the_missed_blocks_each_once((byte First, byte Blocks, bool Extension)[] raw, byte limit)
    {
        var writes = Writes(raw);
        var max = 1 + (limit % 20);
        var runs = ResyncPlan.Coalesce(writes, max).Runs;
        foreach (var extension in new[] { false, true })
        {
            var missed = writes.Where(w => w.Extension == extension).SelectMany(w => Enumerable.Range(0, w.Blocks).Select(b => w.FirstBlock + b)).ToHashSet();
            var copied = runs.SelectMany(r => r).Where(c => c.Extension == extension)
                .SelectMany(c => Enumerable.Range(0, c.Blocks).Select(b => c.FirstBlock + b)).ToList();
            if (copied.Count != copied.Distinct().Count() || !missed.SetEquals(copied)) return false;
        }
        return runs.SelectMany(r => r).All(c => c.Blocks >= 1 && c.Blocks <= max)
            && runs.All(r => r.All(c => c.Extension == r[0].Extension));
    }

    [Property(MaxTest = 500)]
    public bool every_write_completes_once_in_the_chunk_holding_its_last_block((byte First, byte Blocks, bool Extension)[] raw, byte limit)
    {
        var writes = Writes(raw);
        var runs = ResyncPlan.Coalesce(writes, 1 + (limit % 20)).Runs;
        var completions = runs.SelectMany(r => r).SelectMany(c => c.Completes.Select(t => (Tag: t, Chunk: c))).ToList();
        if (completions.Count != writes.Count || completions.Select(x => x.Tag).Distinct().Count() != writes.Count) return false;
        foreach (var (tag, chunk) in completions)
        {
            var w = writes.Single(x => x.Tag == tag);
            var last = w.FirstBlock + w.Blocks - 1;
            if (w.Extension != chunk.Extension || last < chunk.FirstBlock || last >= chunk.End) return false;
            // Every earlier block of the write is in an earlier chunk of the same run (copied before, in order).
            var run = runs.Single(r => r.Contains(chunk));
            var upTo = run.TakeWhile(c => c != chunk).Append(chunk).ToList();
            for (var b = w.FirstBlock; b <= last; b++)
            {
                if (!upTo.Any(c => b >= c.FirstBlock && b < c.End)) return false;
            }
        }
        return true;
    }

    [Property(MaxTest = 300)]
    public bool runs_are_disjoint_and_do_not_touch((byte First, byte Blocks, bool Extension)[] raw)
    {
        var runs = ResyncPlan.Coalesce(Writes(raw), 7).Runs;
        foreach (var kind in runs.GroupBy(r => r[0].Extension))
        {
            var spans = kind.Select(r => (First: r[0].FirstBlock, End: r[^1].End)).OrderBy(s => s.First).ToList();
            for (var i = 1; i < spans.Count; i++)
            {
                if (spans[i].First <= spans[i - 1].End) return false;   // touching runs would have been one
            }
        }
        return true;
    }

    /// <summary>
    /// Pieces left after subtracting repairs already applied: a block is left out exactly when a repair of the same
    /// controller covering it is newer than every missed write to it; the pieces, coalesced, still complete every
    /// write once (pieces in several runs complete after all runs), and a write with nothing left is covered.
    /// </summary>
    [Property(MaxTest = 300)]
    public bool subtracting_applied_repairs_leaves_exactly_the_blocks_no_newer_repair_carried(
        (byte First, byte Blocks, bool Extension)[] raw, (byte First, byte Blocks, byte Seq, bool OtherController)[] rawRepairs)
    {
        var writes = Writes(raw).Select((w, i) => w with { Extension = false }).ToList();
        var repairs = rawRepairs.Select(r => new AppliedRepair(r.First % 64, 1 + (r.Blocks % 12),
            new Contracts.Tag(r.OtherController ? 2 : 1, 1, r.Seq % (writes.Count + 3)))).ToList();
        var (pieces, covered) = ResyncPlan.SubtractRepaired(writes, repairs);
        foreach (var w in writes)
        {
            for (var b = w.FirstBlock; b < w.FirstBlock + w.Blocks; b++)
            {
                var newest = writes.Where(x => b >= x.FirstBlock && b < x.FirstBlock + x.Blocks).Max(x => Contracts.Tag.TryParse(x.Tag, out var t) ? t : default);
                var carried = repairs.Any(r => r.RepairTag.ControllerId == 1 && b >= r.FirstBlock && b < r.FirstBlock + r.Blocks && r.RepairTag.CompareTo(newest) > 0);
                var kept = pieces.Any(p => p.Tag == w.Tag && b >= p.FirstBlock && b < p.FirstBlock + p.Blocks);
                if (kept == carried) return false;
            }
            if (covered.Contains(w.Tag) != !pieces.Any(p => p.Tag == w.Tag)) return false;
        }
        var plan = ResyncPlan.Coalesce(pieces, 5);
        var completed = plan.Runs.SelectMany(r => r).SelectMany(c => c.Completes).Concat(plan.CompleteAfterAll).ToList();
        return completed.Count == completed.Distinct().Count()
            && completed.Order().SequenceEqual(pieces.Select(p => p.Tag).Distinct().Order());
    }

    [Fact]
    public void a_request_asked_twice_in_a_batch_is_copied_once()
    {
        var w = new MissedWrite("1:1:5", 10, 3, false, "d0");
        var runs = ResyncPlan.Coalesce([w, w], 16).Runs;
        var chunk = Assert.Single(Assert.Single(runs));
        Assert.Equal((10L, 3), (chunk.FirstBlock, chunk.Blocks));
        Assert.Equal(["1:1:5"], chunk.Completes);
    }

    [Fact]
    public void bad_ranges_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ResyncPlan.Coalesce([new MissedWrite("1:1:1", -1, 1, false, null)], 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => ResyncPlan.Coalesce([new MissedWrite("1:1:1", 0, 0, false, null)], 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => ResyncPlan.Coalesce([new MissedWrite("1:1:1", 0, 1, false, null)], 0));
    }
}
