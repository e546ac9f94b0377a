namespace TaggedMirror.Controller.Reconciliation;

/// <summary>One write a mirror missed, as reconciliation asked for it: its tag and range (or a piece of that range).</summary>
internal readonly record struct MissedWrite(string Tag, long FirstBlock, int Blocks, bool Extension, string? Source);

/// <summary>A repair already applied on the target: its range and the tag it was sent with.</summary>
internal readonly record struct AppliedRepair(long FirstBlock, int Blocks, Contracts.Tag RepairTag);

/// <summary>
/// A range copied under one fence. <see cref="Completes"/> are the tags whose last block lies in it: they count as
/// repaired once it is copied (their earlier blocks are in the chunks before it in the same run). <see cref="Label"/>
/// names the run (the record's <c>tag</c>: a missed write in it).
/// </summary>
internal sealed record ResyncChunk(long FirstBlock, int Blocks, bool Extension, string? PreferredSource, IReadOnlyList<string> Completes, string Label)
{
    public long End => FirstBlock + Blocks;
}

/// <summary>
/// Coalescing of the writes one mirror missed (issue 9, faster resync): ranges that overlap or touch are merged into
/// runs, each run cut into chunks a repair message can carry. Runs are disjoint, so they may be copied in
/// parallel; the chunks of one run are copied in order, so a tag is recorded as repaired only after every one of
/// its blocks was copied. The union of the chunks is exactly the union of the missed ranges: no block is copied
/// twice and none that no missed write touched. Appends past the volume's end (extensions) never merge with
/// writes inside it: they are copied as extensions.
/// </summary>
internal static class ResyncPlan
{
    /// <summary>
    /// Leaves out the blocks a repair already applied on the target carried newer than every missed write to them:
    /// a repair's tag is drawn after its range's fence is up, and a write to a fenced range waits for the fence
    /// before it takes its tag, so a missed write of the same controller with a smaller tag was issued before the
    /// fence, and the repair's source held it. (Reconciliation decides in waves, as barriers reach the target; a
    /// later wave's write overlapping an earlier wave's copy needs only what that copy did not carry.) Returns the
    /// pieces still to copy, and the tags nothing is left to copy for. Repairs of another controller carry no
    /// such order and are not used.
    /// </summary>
    public static (List<MissedWrite> Pieces, List<string> AlreadyCovered) SubtractRepaired(IReadOnlyList<MissedWrite> writes, IReadOnlyList<AppliedRepair> repairs)
    {
        ArgumentNullException.ThrowIfNull(writes);
        ArgumentNullException.ThrowIfNull(repairs);
        var pieces = new List<MissedWrite>();
        var covered = new List<string>();
        var parsed = writes.Select(w => (Write: w, Tag: Contracts.Tag.TryParse(w.Tag, out var t) ? t : (Contracts.Tag?)null)).ToList();
        foreach (var (w, tag) in parsed.DistinctBy(p => p.Write.Tag))
        {
            if (tag is not { } mine || repairs.Count == 0)
            {
                pieces.Add(w);
                continue;
            }
            var before = pieces.Count;
            long? start = null;
            for (var b = w.FirstBlock; b <= w.FirstBlock + w.Blocks; b++)
            {
                var keep = b < w.FirstBlock + w.Blocks && !Carried(b);
                if (keep && start is null) start = b;
                if (!keep && start is { } s0)
                {
                    pieces.Add(w with { FirstBlock = s0, Blocks = (int)(b - s0) });
                    start = null;
                }
            }
            if (pieces.Count == before) covered.Add(w.Tag);

            // Carried: a repair of the same controller covering the block is newer than every missed write to it.
            bool Carried(long block)
            {
                var newest = parsed.Where(p => p.Tag is { } t && p.Write.Extension == w.Extension
                        && block >= p.Write.FirstBlock && block < p.Write.FirstBlock + p.Write.Blocks)
                    .Select(p => p.Tag!.Value).Max();
                return repairs.Any(r => r.RepairTag.ControllerId == mine.ControllerId && block >= r.FirstBlock && block < r.FirstBlock + r.Blocks
                    && r.RepairTag.CompareTo(newest) > 0 && newest.ControllerId == mine.ControllerId);
            }
        }
        return (pieces, covered);
    }

    public static CoalescedResync Coalesce(IEnumerable<MissedWrite> writes, int maxChunkBlocks)
    {
        ArgumentNullException.ThrowIfNull(writes);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxChunkBlocks, 1);
        // A request asked again in the same batch is the same write; a write may come in pieces (SubtractRepaired).
        var distinct = writes.Distinct().ToList();
        foreach (var w in distinct)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(w.FirstBlock);
            ArgumentOutOfRangeException.ThrowIfLessThan(w.Blocks, 1);
        }
        var groups = new List<(List<MissedWrite> Members, long Start, long End, bool Extension)>();
        foreach (var kind in distinct.GroupBy(w => w.Extension))
        {
            var sorted = kind.OrderBy(w => w.FirstBlock).ThenBy(w => w.Blocks).ThenBy(w => w.Tag, StringComparer.Ordinal).ToList();
            var i = 0;
            while (i < sorted.Count)
            {
                // A run: everything that overlaps or touches [start, end).
                var start = sorted[i].FirstBlock;
                var end = start + sorted[i].Blocks;
                var members = new List<MissedWrite> { sorted[i] };
                for (i++; i < sorted.Count && sorted[i].FirstBlock <= end; i++)
                {
                    members.Add(sorted[i]);
                    end = Math.Max(end, sorted[i].FirstBlock + sorted[i].Blocks);
                }
                groups.Add((members, start, end, kind.Key));
            }
        }
        // A write whose pieces fall in more than one run is complete only when all those runs are: after them all.
        var spanning = groups.SelectMany(g => g.Members.Select(m => m.Tag).Distinct(StringComparer.Ordinal))
            .GroupBy(t => t, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet(StringComparer.Ordinal);
        var runs = groups.Select(g => (IReadOnlyList<ResyncChunk>)Chunks(g.Members, g.Start, g.End, g.Extension, maxChunkBlocks, spanning)).ToList();
        return new CoalescedResync(runs, [.. spanning.Order(StringComparer.Ordinal)]);
    }

    private static List<ResyncChunk> Chunks(List<MissedWrite> members, long start, long end, bool extension, int maxChunkBlocks, HashSet<string> spanning)
    {
        var chunks = new List<ResyncChunk>();
        // Tags by the block just past their range (their last piece's), so each completes in the chunk holding its last block.
        var byEnd = members.Where(m => !spanning.Contains(m.Tag)).GroupBy(m => m.Tag, StringComparer.Ordinal)
            .Select(g => (Tag: g.Key, End: g.Max(m => m.FirstBlock + m.Blocks)))
            .OrderBy(m => m.End).ThenBy(m => m.Tag, StringComparer.Ordinal).ToList();
        var label = members.Select(m => m.Tag).Order(StringComparer.Ordinal).First();
        var next = 0;
        for (var first = start; first < end; first += maxChunkBlocks)
        {
            var blocks = (int)Math.Min(maxChunkBlocks, end - first);
            var completes = new List<string>();
            while (next < byEnd.Count && byEnd[next].End <= first + blocks) completes.Add(byEnd[next++].Tag);
            // The source reconciliation named for the first write in the chunk, as a preference: the source is chosen
            // again under the chunk's fence.
            var preferred = members.FirstOrDefault(m => m.FirstBlock < first + blocks && m.FirstBlock + m.Blocks > first).Source;
            chunks.Add(new ResyncChunk(first, blocks, extension, preferred, completes, label));
        }
        return chunks;
    }
}

/// <summary>
/// The runs to copy (disjoint; in parallel), and the writes that complete only once every run has been copied
/// (their pieces lie in more than one run).
/// </summary>
internal sealed record CoalescedResync(IReadOnlyList<IReadOnlyList<ResyncChunk>> Runs, IReadOnlyList<string> CompleteAfterAll);
