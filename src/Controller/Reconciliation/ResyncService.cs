using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using TaggedMirror.Contracts.Bus;
using TaggedMirror.Contracts.TagTable;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Reads;
using TaggedMirror.Controller.Tagging;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting.Events;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>
/// Flow 6, and the range copy full copies (<see cref="FullCopy.FullCopyService"/>) are made of. Copying a range: fence it (new writes to it wait), wait until the source has applied
/// everything sent to it and everything its log holds, read the range from the source, send it to the target
/// as a repair with a new tag through the target's own log (so it lands after the target's earlier writes),
/// wait until the target applied it, release the fence, record the resync. The source is chosen under the fence,
/// for every range anew (<see cref="CopySources"/>): a mirror that itself missed writes could copy a stale range
/// over a newer one.
/// <para>
/// Reconciliation's requests arrive in batches (<see cref="ResyncBatchConsumer"/>); per volume and target the
/// missed writes are coalesced (<see cref="ResyncPlan"/>: overlapping and touching ranges merged, never a block
/// more), the disjoint runs copied in parallel (<see cref="ControllerOptions.ResyncParallelism"/>), every byte
/// copied paced by the controller's <see cref="ByteRate"/> (full copies too).
/// </para>
/// </summary>
internal sealed class ResyncService(
    VolumeCatalog catalog,
    WritePipeline pipeline,
    DeviceReader devices,
    CopySources sources,
    TagGenerator tags,
    EventStreams store,
    ByteRate throttle,
    ControllerOptions options,
    ControllerTelemetry telemetry,
    ILogger<ResyncService> logger)
{
    private readonly ConcurrentDictionary<string, ConcurrentQueue<(ResyncCompleted, TaskCompletionSource)>> _unrecorded = new(StringComparer.Ordinal);

    /// <summary>
    /// Carries out a batch of reconciliation's requests, the volumes at once. Requests for volumes another controller
    /// owns, for mirrors the volume does not have, and for writes already repaired do nothing. A run that fails is
    /// logged and left: reconciliation asks again for what is not recorded as repaired.
    /// </summary>
    public Task ResyncAsync(IReadOnlyList<ResyncRequested> requests, CancellationToken ct) =>
        Task.WhenAll(requests.GroupBy(r => r.Volume, StringComparer.Ordinal).Select(g => ResyncVolumeAsync(g.Key, [.. g], ct)));

    private async Task ResyncVolumeAsync(string volume, List<ResyncRequested> requests, CancellationToken ct)
    {
        while (catalog.Find(volume) is { Owned: true } v)   // else another controller's volume, or deleted
        {
            await v.ResyncLock.WaitAsync(ct);
            try
            {
                // Replaced by a change of its mirrors while this waited: the requests are for the volume as it is now
                // (a retired object still in the catalog is being read again after a failure: the requests come again).
                if (v.Retired)
                {
                    if (ReferenceEquals(catalog.Find(volume), v)) return;
                    continue;
                }
                await ResyncLockedAsync(v, requests, ct);
                return;
            }
            finally
            {
                v.ResyncLock.Release();
            }
        }
    }

    private async Task ResyncLockedAsync(Volume v, List<ResyncRequested> requests, CancellationToken ct)
    {
        var done = await AlreadyResyncedAsync(v.Name, requests, ct);
        foreach (var group in requests.GroupBy(r => r.TargetDevice, StringComparer.Ordinal))
        {
            if (v.MirrorOn(group.Key) is not { } target) continue;
            var missed = new List<MissedWrite>();
            foreach (var r in group)
            {
                if (done.Contains((r.Tag, r.TargetDevice))) continue;
                if (r.FirstBlock < 0 || r.BlockCount < 1 || r.FirstBlock > long.MaxValue - r.BlockCount)
                {
                    logger.LogWarning("Volume {Volume}: resync request for {Tag} with range [{First}+{Blocks}] ignored", v.Name, r.Tag, r.FirstBlock, r.BlockCount);
                    continue;
                }
                missed.Add(new MissedWrite(r.Tag, r.FirstBlock, r.BlockCount, r.Extension, r.SourceDevice));
            }
            if (missed.Count > 0) await ResyncTargetAsync(v, target, missed, [.. group.Select(r => r.TraceParent)], ct);
        }
    }

    private async Task ResyncTargetAsync(Volume v, Mirror target, List<MissedWrite> missed, string?[] traceParents, CancellationToken ct)
    {
        var (pieces, covered) = ResyncPlan.SubtractRepaired(missed, await AppliedRepairsAsync(v, target, missed, ct));
        var plan = ResyncPlan.Coalesce(pieces, options.FullCopyStepBlocks(v.BlockSize));
        var runs = plan.Runs;
        var chunkBlocks = runs.Sum(run => run.Sum(c => (long)c.Blocks));
        // Linked to the writes it repairs (their trace ids survive the trip through the tag table).
        var links = traceParents.Select(p => KafkaTracing.TryParse(p, out var write) ? new ActivityLink(write) : default).Where(l => l.Context != default).ToList();
        using var span = telemetry.Source.StartActivity("resync", ActivityKind.Internal, parentContext: default, links: links); // parent: the bus consume span
        if (span is { IsAllDataRequested: true })
        {
            span.SetTag(TelemetryAttributes.Volume, v.Name).SetTag(TelemetryAttributes.ResyncTarget, target.DeviceId);
            span.SetTag(TelemetryAttributes.Tag, missed[0].Tag).SetTag("tm.resync.runs", runs.Count);
            span.SetTag(TelemetryAttributes.ResyncTags, string.Join(",", missed.Select(m => m.Tag)));
            span.SetTag(TelemetryAttributes.Blocks, chunkBlocks);
        }
        if (missed.Count > 1)
        {
            logger.LogInformation("Volume {Volume}: resyncing {Writes} missed writes to {Target} as {Runs} ranges of {Blocks} blocks in all ({Covered} carried by earlier copies)",
                v.Name, missed.Count, target.DeviceId, runs.Count, chunkBlocks, covered.Count);
        }
        var failures = 0;
        var started = Stopwatch.GetTimestamp();
        await Parallel.ForEachAsync(Copies(runs, v.BlockSize), new ParallelOptions { MaxDegreeOfParallelism = options.ResyncParallelism, CancellationToken = ct }, async (copy, c) =>
        {
            try
            {
                if (copy.Batch)
                {
                    await CopyBatchAsync(v, target, copy.Chunks, c);
                    return;
                }
                foreach (var chunk in copy.Chunks)
                    await CopyFencedAsync(v, v.MirrorOn(chunk.PreferredSource ?? ""), target, chunk.FirstBlock, chunk.Blocks, chunk.Extension, chunk.Label, chunk.Completes, c);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !c.IsCancellationRequested)
            {
                var runsLost = copy.Batch ? copy.Chunks.Count : 1;
                Interlocked.Add(ref failures, runsLost);
                logger.LogWarning("Volume {Volume}: resync of {Runs} range(s) from [{First}, {End}) to {Target} not done now ({Tag}): {Reason}",
                    v.Name, runsLost, copy.Chunks[0].FirstBlock, copy.Chunks[^1].End, target.DeviceId, copy.Chunks[0].Label, ex.Message);
            }
        });
        if (failures > 0) span?.SetStatus(ActivityStatusCode.Error, $"{failures} of {runs.Count} ranges not copied");
        // One line per batch (each range's copy is at Debug): a 200-write outage is 200 ranges.
        logger.LogInformation("Volume {Volume}: resync to {Target} copied {Copied} of {Runs} ranges ({Blocks} blocks) in {Ms:0} ms{Failed}",
            v.Name, target.DeviceId, runs.Count - failures, runs.Count, chunkBlocks, Stopwatch.GetElapsedTime(started).TotalMilliseconds,
            failures > 0 ? $"; {failures} not done now, asked again later" : "");
        // Writes nothing was left to copy for, and (when every run was copied) writes whose pieces spanned runs.
        var done = failures == 0 ? [.. covered, .. plan.CompleteAfterAll] : covered;
        if (done.Count > 0)
        {
            await RecordAsync(v, new ResyncCompleted(done[0], target.DeviceId, target.DeviceId, missed[0].FirstBlock, 0, missed[0].Extension, 0, 0,
                RepairTag: "", Tags: done), ct);
        }
    }

    /// <summary>One unit of a resync's work: a batch of runs of one chunk each, or one run of several chunks.</summary>
    private readonly record struct Copy(bool Batch, IReadOnlyList<ResyncChunk> Chunks);

    /// <summary>
    /// The runs as units of work: runs of one chunk (the missed writes of an outage are mostly small and apart)
    /// packed in order into batches of at most <see cref="ControllerOptions.ResyncBatchBytes"/> and
    /// <see cref="Contracts.Api.RangeRead.MaxRanges"/> ranges; a run of several chunks (longer than one repair may
    /// carry) copied on its own, chunk after chunk, as its chunks' completions assume. Under a rate limit a batch is
    /// also at most what the limit grants at once (<see cref="ByteRate.MaxAtOnce"/>): batches larger than that were
    /// granted piece by piece, interleaved, and all completed together at the end, so a paced resync showed no
    /// progress until it was done.
    /// </summary>
    private List<Copy> Copies(IReadOnlyList<IReadOnlyList<ResyncChunk>> runs, int blockSize)
    {
        var maxBatchBytes = Math.Min(options.ResyncBatchBytes, throttle.MaxAtOnce);
        var copies = new List<Copy>();
        var batch = new List<ResyncChunk>();
        long bytes = 0;
        foreach (var run in runs)
        {
            if (run.Count != 1)
            {
                copies.Add(new Copy(false, run));
                continue;
            }
            var size = (long)run[0].Blocks * blockSize;
            if (batch.Count > 0 && (bytes + size > maxBatchBytes || batch.Count == Contracts.Api.RangeRead.MaxRanges))
            {
                copies.Add(new Copy(true, batch));
                (batch, bytes) = ([], 0);
            }
            batch.Add(run[0]);
            bytes += size;
        }
        if (batch.Count > 0) copies.Add(new Copy(true, batch));
        return copies;
    }

    /// <summary>
    /// Copies a batch of disjoint chunks as <see cref="CopyFencedAsync"/> copies one, with the work shared: every
    /// chunk fenced first, then one source chosen that qualifies for each of them (<see cref="CopySources"/>), one read
    /// of all the ranges from it, the repairs sent together (the target applies them in a batch of its own), one
    /// record. The safety argument is the single range's, range by range: each range is fenced before the source is
    /// checked for it, read under its fence, and repaired through the target's log before its fence drops. When no
    /// mirror qualifies for the whole batch, its chunks are copied one at a time, each free to find its own source
    /// or fall back to copying block by block.
    /// </summary>
    private async Task CopyBatchAsync(Volume v, Mirror target, IReadOnlyList<ResyncChunk> chunks, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var blocks = chunks.Sum(c => (long)c.Blocks);
        using var span = telemetry.Source.StartActivity("copy ranges");
        if (span is { IsAllDataRequested: true })
        {
            span.SetTag(TelemetryAttributes.Volume, v.Name);
            span.SetTag(TelemetryAttributes.ResyncTarget, target.DeviceId);
            span.SetTag(TelemetryAttributes.FirstBlock, chunks[0].FirstBlock);
            span.SetTag(TelemetryAttributes.Blocks, blocks);
            span.SetTag("tm.ranges", chunks.Count);
        }
        // Paced before the fences go up, as a single copy is.
        await throttle.WaitAsync(blocks * v.BlockSize, ct);
        var preferred = v.MirrorOn(chunks.GroupBy(c => c.PreferredSource ?? "").MaxBy(g => g.Count())!.Key);
        var fences = chunks.Select(c => new RangeFence(c.FirstBlock, c.Blocks)).ToList();
        var oneByOne = false;
        try
        {
            lock (v.WriteLock) v.Fences.AddRange(fences);
            Mirror source;
            try
            {
                source = await sources.ChooseAsync(v, target, preferred, [.. chunks.Select(c => (c.FirstBlock, (long)c.Blocks))], ct);
            }
            catch (NoCopySourceException)
            {
                oneByOne = true;
                return;
            }
            span?.SetTag(TelemetryAttributes.ResyncSource, source.DeviceId);
            var chosen = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var offsets = chunks.Select(c => c.FirstBlock * v.BlockSize).ToArray();
            var lengths = chunks.Select(c => c.Blocks * v.BlockSize).ToArray();
            var data = await devices.ReadRangesAsync(source.DeviceId, source.ObjectId, offsets, lengths, ct);
            var at = 0;
            var pieces = new byte[chunks.Count][];
            for (var i = 0; i < chunks.Count; i++)
            {
                pieces[i] = data is null ? new byte[lengths[i]] : data.AsSpan(at, lengths[i]).ToArray();
                at += lengths[i];
            }
            var read = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var repairTags = await Task.WhenAll(chunks.Select((c, i) => RepairChunkAsync(v, source, target, c, pieces[i], ct)));
            var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var volume = new KeyValuePair<string, object?>(TelemetryAttributes.Volume, v.Name);
            var device = new KeyValuePair<string, object?>(TelemetryAttributes.Device, target.DeviceId);
            telemetry.Resyncs.Add(chunks.Count, volume, device);
            telemetry.ResyncBytes.Add(lengths.Sum(l => (long)l), volume, device);
            await RecordAsync(v, [.. chunks.Select((c, i) => new ResyncCompleted(c.Label, target.DeviceId, source.DeviceId, c.FirstBlock, c.Blocks, c.Extension,
                lengths[i], elapsed, repairTags[i].ToString(), Tags: c.Completes))], ct);
            logger.LogDebug("Volume {Volume}: copied {Ranges} ranges ({Blocks} blocks) from {Source} to {Target} in {Ms:0.0} ms (paced and source chosen at {Chosen:0.0}, read at {Read:0.0}, repaired at {Repaired:0.0})",
                v.Name, chunks.Count, blocks, source.DeviceId, target.DeviceId, Stopwatch.GetElapsedTime(started).TotalMilliseconds, chosen, read, elapsed);
        }
        finally
        {
            lock (v.WriteLock)
            {
                foreach (var f in fences) v.Fences.Remove(f);
            }
            foreach (var f in fences) f.Released.TrySetResult();
            if (oneByOne)
            {
                span?.SetTag("tm.one_by_one", true);
                foreach (var c in chunks)
                    await CopyFencedAsync(v, v.MirrorOn(c.PreferredSource ?? ""), target, c.FirstBlock, c.Blocks, c.Extension, c.Label, c.Completes, ct);
            }
        }
    }

    /// <summary>
    /// One range of a batch repaired, in a "copy range" span of its own under the batch's (its repair's produce span a
    /// child of it), so the trace of a missed write still leads from its resync to the copy that carried its blocks.
    /// </summary>
    private async Task<Contracts.Tag> RepairChunkAsync(Volume v, Mirror source, Mirror target, ResyncChunk chunk, byte[] data, CancellationToken ct)
    {
        using var span = StartCopyRangeSpan(v, target, chunk.FirstBlock, chunk.Blocks, chunk.Extension);
        span?.SetTag(TelemetryAttributes.ResyncSource, source.DeviceId).SetTag("tm.bytes_copied", data.Length);
        var repairTag = await pipeline.RepairAsync(v, target, chunk.FirstBlock, data, ct);
        span?.SetTag("tm.repair_tag", repairTag.ToString());
        return repairTag;
    }

    /// <summary>The "copy range" span of one range, whether copied alone or in a batch.</summary>
    private Activity? StartCopyRangeSpan(Volume v, Mirror target, long firstBlock, int blocks, bool extension)
    {
        var span = telemetry.Source.StartActivity("copy range");
        if (span is { IsAllDataRequested: true })
        {
            span.SetTag(TelemetryAttributes.Volume, v.Name);
            span.SetTag(TelemetryAttributes.ResyncTarget, target.DeviceId);
            span.SetTag(TelemetryAttributes.FirstBlock, firstBlock);
            span.SetTag(TelemetryAttributes.Blocks, blocks);
            span.SetTag("tm.extension", extension);
        }
        return span;
    }

    /// <summary>Repairs this controller's copies applied on <paramref name="target"/> over the span of <paramref name="missed"/>.</summary>
    private async Task<List<AppliedRepair>> AppliedRepairsAsync(Volume v, Mirror target, List<MissedWrite> missed, CancellationToken ct)
    {
        var repairs = new List<AppliedRepair>();
        await using var cmd = store.DataSource.CreateCommand($"""
            SELECT first_block, block_count, repair_tag FROM {store.Schema}.resyncs
            WHERE volume = @v AND target = @t AND block_count > 0 AND repair_tag <> ''
              AND first_block < @end AND first_block + block_count > @start
            """);
        cmd.Parameters.AddWithValue("v", v.Name);
        cmd.Parameters.AddWithValue("t", target.DeviceId);
        cmd.Parameters.AddWithValue("start", missed.Min(m => m.FirstBlock));
        cmd.Parameters.AddWithValue("end", missed.Max(m => m.FirstBlock + m.Blocks));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            if (Contracts.Tag.TryParse(r.GetString(2), out var tag)) repairs.Add(new AppliedRepair(r.GetInt64(0), r.GetInt32(1), tag));
        }
        return repairs;
    }

    /// <summary>Copies one range under its fence (a full copy's step); the source is chosen and checked only once the fence is up. Returns the sources' devices.</summary>
    public async Task<string> CopyAsync(Volume v, Mirror? preferred, Mirror target, long firstBlock, int blocks, bool extension, string? tag, CancellationToken ct)
    {
        await v.ResyncLock.WaitAsync(ct);
        try
        {
            v.ThrowIfRetired();   // a full copy of the old shape stops; maintenance starts one on the new
            return await CopyFencedAsync(v, preferred, target, firstBlock, blocks, extension, tag, tag is null ? [] : [tag], ct);
        }
        finally
        {
            v.ResyncLock.Release();
        }
    }

    /// <summary>
    /// Copies [<paramref name="firstBlock"/>, +<paramref name="blocks"/>) under its own fence; the caller holds the
    /// volume's resync lock. <paramref name="completes"/> go on the record of the last part copied.
    /// </summary>
    private async Task<string> CopyFencedAsync(
        Volume v, Mirror? preferred, Mirror target, long firstBlock, int blocks, bool extension, string? tag, IReadOnlyList<string> completes, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        // One span per copied range: fence, choose and wait for the source, read, repair (its produce span is a child).
        using var span = StartCopyRangeSpan(v, target, firstBlock, blocks, extension);
        // Paced before the fence goes up, never under it: writes to the range wait for the copy, not for the rate limit
        // (found by the attach test: at 1 MiB/s each step held its range's writes back for a second).
        await throttle.WaitAsync((long)blocks * v.BlockSize, ct);
        var fence = new RangeFence(firstBlock, blocks);
        try
        {
            lock (v.WriteLock) v.Fences.Add(fence);
            long fenceSeq;
            lock (v.WriteLock) fenceSeq = tags.Issued; // every write up to here was enqueued before the fence
            // A resync of missed writes may fall back to copying block by block from the holders of the newest writes.
            var parts = await sources.PlanAsync(v, target, preferred, firstBlock, blocks, perBlockFallback: tag is not null, fenceSeq, ct);
            span?.SetTag(TelemetryAttributes.ResyncSource, string.Join(",", parts.Select(p => p.Source.DeviceId).Distinct()));
            if (parts.Count == 0)
            {
                // The target holds the newest write to every block of the range: nothing to copy, but the
                // writes count as repaired there.
                await RecordAsync(v, new ResyncCompleted(tag, target.DeviceId, target.DeviceId, firstBlock, 0, extension, 0,
                    Stopwatch.GetElapsedTime(started).TotalMilliseconds, RepairTag: "", Tags: completes), ct);
                logger.LogInformation("Volume {Volume}: {Target} holds newer writes to every block of [{First}, {End}) than {Tag}: nothing to copy",
                    v.Name, target.DeviceId, firstBlock, firstBlock + blocks, tag);
                return target.DeviceId;
            }
            var used = new List<string>();
            for (var i = 0; i < parts.Count; i++)
            {
                var part = parts[i];
                var source = part.Source;
                var data = await devices.ReadAsync(source.DeviceId, source.ObjectId, part.FirstBlock * v.BlockSize, part.Blocks * v.BlockSize, ct)
                    ?? new byte[part.Blocks * v.BlockSize];
                var repairTag = await pipeline.RepairAsync(v, target, part.FirstBlock, data, ct);
                var elapsed = Stopwatch.GetElapsedTime(started);
                span?.SetTag("tm.repair_tag", repairTag.ToString()).SetTag("tm.bytes_copied", data.Length);
                var volume = new KeyValuePair<string, object?>(TelemetryAttributes.Volume, v.Name);
                var device = new KeyValuePair<string, object?>(TelemetryAttributes.Device, target.DeviceId);
                telemetry.Resyncs.Add(1, volume, device);
                telemetry.ResyncBytes.Add(data.Length, volume, device);
                await RecordAsync(v, new ResyncCompleted(tag, target.DeviceId, source.DeviceId, part.FirstBlock, part.Blocks, extension, data.Length,
                    elapsed.TotalMilliseconds, repairTag.ToString(), Tags: i == parts.Count - 1 ? completes : []), ct);
                logger.LogDebug("Volume {Volume}: copied blocks [{First}, {End}) from {Source} to {Target} for {Tag} in {Ms:0.0} ms",
                    v.Name, part.FirstBlock, part.FirstBlock + part.Blocks, source.DeviceId, target.DeviceId, tag ?? "full copy", elapsed.TotalMilliseconds);
                used.Add(source.DeviceId);
            }
            return string.Join(",", used.Distinct(StringComparer.Ordinal));
        }
        finally
        {
            lock (v.WriteLock) v.Fences.Remove(fence);
            fence.Released.TrySetResult();
        }
    }

    /// <summary>
    /// Records copies, with group commit: runs copied in parallel append one at a time (see
    /// <see cref="Volume.StreamLock"/>), so whoever takes the lock appends every record waiting, in one transaction.
    /// (One append per copy under the lock was most of a 200-write resync's time.) Returns once these are recorded.
    /// </summary>
    private Task RecordAsync(Volume v, ResyncCompleted done, CancellationToken ct) => RecordAsync(v, [done], ct);

    private async Task RecordAsync(Volume v, IReadOnlyList<ResyncCompleted> records, CancellationToken ct)
    {
        var waiting = _unrecorded.GetOrAdd(v.Name, _ => new ConcurrentQueue<(ResyncCompleted, TaskCompletionSource)>());
        var recorded = new List<Task>(records.Count);
        foreach (var done in records)
        {
            var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            waiting.Enqueue((done, tcs));
            recorded.Add(tcs.Task);
        }
        await v.StreamLock.WaitAsync(ct);
        try
        {
            if (!recorded.All(t => t.IsCompleted))
            {
                var batch = new List<(ResyncCompleted Done, TaskCompletionSource Recorded)>();
                while (waiting.TryDequeue(out var item)) batch.Add(item);
                try
                {
                    await store.AppendAsync(ResyncEventTypes.Stream(v.Name), ExpectedVersion.Any, [.. batch.Select(b => (object)b.Done)], ct);
                    foreach (var b in batch) b.Recorded.TrySetResult();
                }
                catch (Exception ex)
                {
                    foreach (var b in batch) b.Recorded.TrySetException(ex);
                }
            }
        }
        finally
        {
            v.StreamLock.Release();
        }
        await Task.WhenAll(recorded);
    }

    /// <summary>The (tag, target) pairs among <paramref name="requests"/> already repaired.</summary>
    private async Task<HashSet<(string Tag, string Target)>> AlreadyResyncedAsync(string volume, List<ResyncRequested> requests, CancellationToken ct)
    {
        await using var cmd = store.DataSource.CreateCommand($"""
            SELECT q.tag, q.target FROM unnest(@tags, @targets) AS q(tag, target)
            WHERE EXISTS (SELECT 1 FROM {store.Schema}.resyncs r WHERE r.volume = @v AND r.target = q.target
                          AND (r.tags @> ARRAY[q.tag] OR (r.tags IS NULL AND r.tag = q.tag)))
            """);
        cmd.Parameters.AddWithValue("v", volume);
        cmd.Parameters.AddWithValue("tags", requests.Select(r => r.Tag).ToArray());
        cmd.Parameters.AddWithValue("targets", requests.Select(r => r.TargetDevice).ToArray());
        var done = new HashSet<(string, string)>();
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) done.Add((reader.GetString(0), reader.GetString(1)));
        return done;
    }
}
