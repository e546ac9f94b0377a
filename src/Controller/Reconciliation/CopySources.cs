using Confluent.Kafka;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Tagging;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.EventStore;

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
internal sealed class CopySources(WritePipeline pipeline, LogProgress progress, PgEventStore store, TagGenerator tags, ControllerOptions options, ILogger<CopySources> logger)
{
    /// <summary>The source for <paramref name="target"/>'s range, <paramref name="preferred"/> first; throws <see cref="NoCopySourceException"/> if none qualifies.</summary>
    public async Task<Mirror> ChooseAsync(Volume v, Mirror target, Mirror? preferred, long firstBlock, long blocks, CancellationToken ct)
    {
        var reasons = new List<string>();
        var candidates = v.Mirrors.Where(m => m != target).OrderBy(m => m == preferred ? 0 : 1).ThenBy(m => m.Index);
        foreach (var m in candidates)
        {
            var why = await DisqualifiedAsync(v, m, firstBlock, blocks, ct);
            if (why is null) return m;
            reasons.Add($"{m.DeviceId}: {why}");
        }
        logger.LogInformation("Volume {Volume}: no source for blocks [{First}, {End}) of {Target}: {Reasons}",
            v.Name, firstBlock, firstBlock + blocks, target.DeviceId, string.Join("; ", reasons));
        throw new NoCopySourceException(
            $"no mirror of {v.Name} holds every write to blocks [{firstBlock}, {firstBlock + blocks}) ({string.Join("; ", reasons)})");
    }

    private async Task<string?> DisqualifiedAsync(Volume v, Mirror m, long firstBlock, long blocks, CancellationToken ct)
    {
        if (!m.Current) return m.State == MirrorState.InSync ? "missed a write" : m.State.ToString();
        try
        {
            await pipeline.AppliedOverlappingAsync(v, m, firstBlock, blocks).WaitAsync(options.AppliedWaitTimeout, ct);
            await progress.WaitCaughtUpAsync(m.DeviceId, options.AppliedWaitTimeout, ct);
        }
        catch (Exception ex) when (ex is MirrorUnavailableException or TimeoutException or KafkaException)
        {
            return ex.Message;
        }
        // Re-checked after the waits: a write may have missed it meanwhile.
        if (!m.Current) return "missed a write while the copy waited";
        var lacking = await LackingOtherEpochWritesAsync(v, m, firstBlock, blocks, ct);
        return lacking > 0 ? $"lacks {lacking} unsettled write(s) of an earlier epoch to the range" : null;
    }

    private async Task<long> LackingOtherEpochWritesAsync(Volume v, Mirror m, long firstBlock, long blocks, CancellationToken ct)
    {
        var s = store.Schema;
        await using var cmd = store.DataSource.CreateCommand($"""
            SELECT count(DISTINCT (e.controller_id, e.epoch, e.seq)) FROM {s}.recon_entries e
            WHERE e.volume = @v AND NOT e.repair
              AND e.first_block < @end AND @first < e.first_block + e.block_count
              AND NOT (e.controller_id = @c AND e.epoch = @e)
              AND NOT EXISTS (SELECT 1 FROM {s}.recon_entries x
                              WHERE (x.controller_id, x.epoch, x.seq, x.device_id) = (e.controller_id, e.epoch, e.seq, @d))
              AND NOT EXISTS (SELECT 1 FROM {s}.recon_repaired r
                              WHERE (r.controller_id, r.epoch, r.seq, r.device_id) = (e.controller_id, e.epoch, e.seq, @d))
            """);
        cmd.Parameters.AddWithValue("v", v.Name);
        cmd.Parameters.AddWithValue("first", firstBlock);
        cmd.Parameters.AddWithValue("end", firstBlock + blocks);
        cmd.Parameters.AddWithValue("c", tags.ControllerId);
        cmd.Parameters.AddWithValue("e", tags.Epoch);
        cmd.Parameters.AddWithValue("d", m.DeviceId);
        return (long)(await cmd.ExecuteScalarAsync(ct))!;
    }
}

/// <summary>No mirror qualifies as the source of a range now; the copy is retried later.</summary>
internal sealed class NoCopySourceException(string message) : Exception(message);
