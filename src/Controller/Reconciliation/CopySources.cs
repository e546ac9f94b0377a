using Confluent.Kafka;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Tagging;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>
/// Chooses the mirror a range is copied from, with the range already fenced (no new write to it can start).
/// A range may only be copied from a mirror that holds every write to it issued before the fence; copying
/// from any other would put older bytes over newer ones, and reconciliation would then carry the loss back.
/// A candidate must be:
/// <list type="bullet">
/// <item>current: in sync, and missed no write of this epoch since it was declared so (raised before a missed
/// write settles, so there is no window);</item>
/// <item>done with every write in flight that overlaps the range (a copy that failed or was skipped there
/// disqualifies it: waiting for it would never end, and ignoring it would copy a stale range);</item>
/// <item>caught up with its whole log (writes of earlier epochs are in its log, not in this process's memory);</item>
/// <item>holding every unsettled write of another epoch or controller that overlaps the range and that any
/// mirror recorded, as the tag tables show (a write a crashed owner sent to some mirrors only).</item>
/// </list>
/// Checked anew for every range copied, never once per volume or per queued request.
/// </summary>
internal sealed class CopySources(WritePipeline pipeline, LogProgress progress, EventStreams store, TagGenerator tags, ControllerOptions options, ILogger<CopySources> logger)
{
    /// <summary>
    /// What to copy to <paramref name="target"/> and from where: the whole range from one qualified source if
    /// there is one; otherwise, with <paramref name="perBlockFallback"/>, block by block from the holders of the
    /// newest writes (<see cref="PerBlockAsync"/>). An empty plan: the target already holds the newest write to
    /// every block. Throws <see cref="NoCopySourceException"/> when neither works now.
    /// </summary>
    public async Task<IReadOnlyList<CopyPart>> PlanAsync(
        Volume v, Mirror target, Mirror? preferred, long firstBlock, int blocks, bool perBlockFallback, long fenceSeq, CancellationToken ct)
    {
        try
        {
            return [new CopyPart(firstBlock, blocks, await ChooseAsync(v, target, preferred, firstBlock, blocks, ct))];
        }
        catch (NoCopySourceException whole) when (perBlockFallback)
        {
            try
            {
                return await PerBlockAsync(v, target, firstBlock, blocks, fenceSeq, ct);
            }
            catch (NoCopySourceException perBlock)
            {
                throw new NoCopySourceException($"{whole.Message}; block by block: {perBlock.Message}");
            }
        }
    }

    /// <summary>The source for <paramref name="target"/>'s range, <paramref name="preferred"/> first; throws <see cref="NoCopySourceException"/> if none qualifies.</summary>
    public Task<Mirror> ChooseAsync(Volume v, Mirror target, Mirror? preferred, long firstBlock, long blocks, CancellationToken ct) =>
        ChooseAsync(v, target, preferred, [(firstBlock, blocks)], ct);

    /// <summary>
    /// One source for every one of <paramref name="ranges"/> (a resync batch, all fenced), <paramref name="preferred"/>
    /// first: a mirror qualifies only if it qualifies for each range, as <see cref="ChooseAsync(Volume, Mirror, Mirror?, long, long, CancellationToken)"/>
    /// would check it one range at a time; the checks themselves are shared (one wait for its log, one query).
    /// Throws <see cref="NoCopySourceException"/> if none qualifies for them all.
    /// </summary>
    public async Task<Mirror> ChooseAsync(Volume v, Mirror target, Mirror? preferred, IReadOnlyList<(long First, long Blocks)> ranges, CancellationToken ct)
    {
        var reasons = new List<string>();
        var candidates = v.Mirrors.Where(m => m != target).OrderBy(m => m == preferred ? 0 : 1).ThenBy(m => m.Index);
        foreach (var m in candidates)
        {
            var why = await DisqualifiedAsync(v, m, ranges, ct);
            if (why is null) return m;
            reasons.Add($"{m.DeviceId}: {why}");
        }
        var what = ranges.Count == 1 ? $"blocks [{ranges[0].First}, {ranges[0].First + ranges[0].Blocks})" : $"{ranges.Count} ranges from block {ranges.Min(r => r.First)}";
        logger.LogInformation("Volume {Volume}: no source for {Ranges} of {Target}: {Reasons}", v.Name, what, target.DeviceId, string.Join("; ", reasons));
        throw new NoCopySourceException($"no mirror of {v.Name} holds every write to {what} ({string.Join("; ", reasons)})");
    }

    private async Task<string?> DisqualifiedAsync(Volume v, Mirror m, IReadOnlyList<(long First, long Blocks)> ranges, CancellationToken ct)
    {
        if (!m.Current) return m.State == MirrorState.InSync ? "missed a write" : m.State.ToString();
        try
        {
            await Task.WhenAll(ranges.Select(r => pipeline.AppliedOverlappingAsync(v, m, r.First, r.Blocks))).WaitAsync(options.CopySourceWaitTimeout, ct);
            await progress.WaitCaughtUpAsync(m.DeviceId, m.ObjectId, options.CopySourceWaitTimeout, ct);
        }
        catch (Exception ex) when (ex is MirrorUnavailableException or TimeoutException or KafkaException)
        {
            return ex.Message;
        }
        // Re-checked after the waits: a write may have missed it meanwhile.
        if (!m.Current) return "missed a write while the copy waited";
        var lacking = await LackingOtherEpochWritesAsync(v, m, ranges, ct);
        return lacking > 0 ? $"lacks {lacking} unsettled write(s) of an earlier epoch to the range" : null;
    }

    /// <summary>
    /// The double fault: every mirror missed some write, so none holds every write to the range. Per block, the
    /// newest unsettled write that covers it says who has the newest bytes: if the target holds it there is
    /// nothing to copy for that block, otherwise any other mirror that holds it (recorded or repaired) and has
    /// applied its whole log is the block's source. Writes are ordered by owner epoch, then sequence: one owner
    /// epoch is one controller process, and a device refuses an older owner's write once it carried a newer
    /// owner's fence or write, so every write of owner epoch N a device applied came before those of N+1
    /// (writes sent before owner epochs existed, owner epoch 0, are ordered only within one controller). Sound
    /// only once reconciliation has seen every write up to the fence on every mirror: every mirror has passed a
    /// barrier of this epoch at or past the fence's sequence and this owner's fence (a device records its
    /// entries before the barrier or fence that follows them, and reconciliation reads in commit order).
    /// </summary>
    private async Task<IReadOnlyList<CopyPart>> PerBlockAsync(Volume v, Mirror target, long firstBlock, int blocks, long fenceSeq, CancellationToken ct)
    {
        var s = store.Schema;
        await using (var barriers = store.DataSource.CreateCommand($"""
            SELECT count(*) FROM unnest(@devices) AS m(device) WHERE {s}.barriers_cover(m.device, @c, @e, @fence)
            """))
        {
            barriers.Parameters.AddWithValue("c", tags.ControllerId);
            barriers.Parameters.AddWithValue("e", tags.Epoch);
            barriers.Parameters.AddWithValue("devices", v.Mirrors.Select(m => m.DeviceId).ToArray());
            barriers.Parameters.AddWithValue("fence", fenceSeq);
            if ((long)(await barriers.ExecuteScalarAsync(ct))! < v.Mirrors.Length)
                throw new NoCopySourceException($"not every mirror has passed a barrier covering sequence {fenceSeq} yet");
        }
        await using (var fences = store.DataSource.CreateCommand(
            $"SELECT count(*) FROM {s}.recon_fences WHERE volume = @v AND device_id = ANY(@devices) AND owner_epoch >= @owner"))
        {
            fences.Parameters.AddWithValue("v", v.Name);
            fences.Parameters.AddWithValue("devices", v.Mirrors.Select(m => m.DeviceId).ToArray());
            fences.Parameters.AddWithValue("owner", v.OwnerEpoch);
            if ((long)(await fences.ExecuteScalarAsync(ct))! < v.Mirrors.Length)
                throw new NoCopySourceException($"not every mirror has passed this owner's fence (owner epoch {v.OwnerEpoch}) yet");
        }

        var writes = new List<(int Controller, int Epoch, long Seq, long First, long End, HashSet<string> Holders, long OwnerEpoch)>();
        await using (var cmd = store.DataSource.CreateCommand($"""
            SELECT e.controller_id, e.epoch, e.seq, min(e.first_block), min(e.block_count),
                   array_agg(DISTINCT e.device_id) || coalesce((SELECT array_agg(r.device_id) FROM {s}.recon_repaired r
                       WHERE (r.controller_id, r.epoch, r.seq) = (e.controller_id, e.epoch, e.seq)), ARRAY[]::text[]),
                   max(e.owner_epoch)
            FROM {s}.recon_entries e
            WHERE e.volume = @v AND NOT e.repair AND e.first_block < @end AND @first < e.first_block + e.block_count
            GROUP BY 1, 2, 3
            """))
        {
            cmd.Parameters.AddWithValue("v", v.Name);
            cmd.Parameters.AddWithValue("first", firstBlock);
            cmd.Parameters.AddWithValue("end", firstBlock + blocks);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                writes.Add((r.GetInt32(0), r.GetInt32(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(3) + r.GetInt32(4),
                    new HashSet<string>(r.GetFieldValue<string[]>(5), StringComparer.Ordinal), r.GetInt64(6)));
            }
        }
        if (writes.Where(w => w.OwnerEpoch == 0).Select(w => w.Controller).Distinct().Count() > 1)
            throw new NoCopySourceException("writes of more than one controller without owner epochs overlap the range, and their order is not known");

        var usable = new Dictionary<string, bool>(StringComparer.Ordinal);
        async Task<bool> UsableAsync(Mirror m)
        {
            if (usable.TryGetValue(m.DeviceId, out var known)) return known;
            // A device being rebuilt may have recorded the write before it deleted its files: never a source until it is back.
            var ok = m.State is not (MirrorState.Degraded or MirrorState.Rebuilding) && m.PendingDegrade is null;
            if (ok)
            {
                try
                {
                    await progress.WaitCaughtUpAsync(m.DeviceId, m.ObjectId, options.CopySourceWaitTimeout, ct);
                }
                catch (Exception ex) when (ex is TimeoutException or KafkaException or MirrorUnavailableException)
                {
                    ok = false;
                }
            }
            return usable[m.DeviceId] = ok;
        }

        var parts = new List<CopyPart>();
        for (var block = firstBlock; block < firstBlock + blocks; block++)
        {
            var covering = writes.Where(w => w.First <= block && block < w.End).ToList();
            if (covering.Count == 0) continue;   // nothing unsettled here: every mirror holds the same writes
            var newest = covering.MaxBy(w => (w.OwnerEpoch, w.Epoch, w.Seq));
            if (newest.Holders.Contains(target.DeviceId)) continue;
            Mirror? source = null;
            foreach (var m in v.Mirrors.Where(m => m != target && newest.Holders.Contains(m.DeviceId)).OrderBy(m => m.Current ? 0 : 1))
            {
                if (await UsableAsync(m))
                {
                    source = m;
                    break;
                }
            }
            if (source is null)
                throw new NoCopySourceException($"no reachable mirror holds {newest.Controller}:{newest.Epoch}:{newest.Seq}, the newest write to block {block}");
            if (parts.Count > 0 && parts[^1].Source == source && parts[^1].FirstBlock + parts[^1].Blocks == block)
                parts[^1] = parts[^1] with { Blocks = parts[^1].Blocks + 1 };
            else
                parts.Add(new CopyPart(block, 1, source));
        }
        logger.LogInformation("Volume {Volume}: no single source for [{First}, {End}) of {Target}; block by block: {Parts}", v.Name, firstBlock,
            firstBlock + blocks, target.DeviceId, parts.Count == 0 ? "nothing to copy" : string.Join(", ", parts.Select(p => $"[{p.FirstBlock}, {p.FirstBlock + p.Blocks}) from {p.Source.DeviceId}")));
        return parts;
    }

    private async Task<long> LackingOtherEpochWritesAsync(Volume v, Mirror m, IReadOnlyList<(long First, long Blocks)> ranges, CancellationToken ct)
    {
        var s = store.Schema;
        await using var cmd = store.DataSource.CreateCommand($"""
            SELECT count(DISTINCT (e.controller_id, e.epoch, e.seq)) FROM {s}.recon_entries e
            WHERE e.volume = @v AND NOT e.repair
              AND EXISTS (SELECT 1 FROM unnest(@firsts, @ends) AS q(first, last) WHERE e.first_block < q.last AND q.first < e.first_block + e.block_count)
              AND NOT (e.controller_id = @c AND e.epoch = @e)
              AND NOT EXISTS (SELECT 1 FROM {s}.recon_entries x
                              WHERE (x.controller_id, x.epoch, x.seq, x.device_id) = (e.controller_id, e.epoch, e.seq, @d))
              AND NOT EXISTS (SELECT 1 FROM {s}.recon_repaired r
                              WHERE (r.controller_id, r.epoch, r.seq, r.device_id) = (e.controller_id, e.epoch, e.seq, @d))
            """);
        cmd.Parameters.AddWithValue("v", v.Name);
        cmd.Parameters.AddWithValue("firsts", ranges.Select(r => r.First).ToArray());
        cmd.Parameters.AddWithValue("ends", ranges.Select(r => r.First + r.Blocks).ToArray());
        cmd.Parameters.AddWithValue("c", tags.ControllerId);
        cmd.Parameters.AddWithValue("e", tags.Epoch);
        cmd.Parameters.AddWithValue("d", m.DeviceId);
        return (long)(await cmd.ExecuteScalarAsync(ct))!;
    }
}

/// <summary>One piece of a copy: blocks [<see cref="FirstBlock"/>, +<see cref="Blocks"/>) from <see cref="Source"/>.</summary>
internal sealed record CopyPart(long FirstBlock, int Blocks, Mirror Source);

/// <summary>No mirror qualifies as the source of a range now; the copy is retried later.</summary>
internal sealed class NoCopySourceException(string message) : Exception(message);
