using System.Collections.Concurrent;
using System.Diagnostics;
using Confluent.Kafka;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Reads;
using TaggedMirror.Controller.Reconciliation;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting.Events;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Verify;

/// <summary>
/// <c>tm verify</c>: an online scrub of a volume, as md's <c>check</c>, DRBD's <c>verify</c> and ZFS's <c>scrub</c>.
/// Range by range, the range is fenced (new writes to it wait) and every in-sync mirror that is current is waited for
/// until it has applied every write to the range sent before the fence and its whole log; then each reports, per
/// block, the checksum of what it holds and the checksum it recorded when it wrote the block
/// (<c>DeviceAgent/BlockStore/ObjectFiles</c>). The fence is released before anything is repaired.
/// <para>
/// A block whose bytes no longer match the checksum its device recorded changed behind the product's back
/// (corrupt); the right bytes are those of a mirror whose block matches its own record (verified). A block with no
/// checksum recorded (written before checksums existed) that differs from the verified bytes is divergent. A
/// block no mirror can vouch for is left alone and reported. Wrong blocks are copied from a verified mirror
/// (<see cref="ResyncService.CopyAsync"/>: under its own fence, from a source chosen under it) and checked again.
/// Ranges holding writes reconciliation has not settled are checked first; reads are paced by a byte rate; the
/// report is kept in memory and its summary appended to the volume's stream (<c>verify_completed</c>).
/// </para>
/// </summary>
internal sealed class VerifyService(
    VolumeCatalog catalog,
    WritePipeline pipeline,
    LogProgress progress,
    DeviceReader devices,
    ResyncService resyncs,
    EventStreams store,
    ControllerOptions options,
    ControllerTelemetry telemetry,
    ILogger<VerifyService> logger)
{
    /// <summary>Blocks per range unless asked otherwise: one fence, one checksum request per mirror.</summary>
    public const int DefaultRangeBlocks = 256;

    private readonly ConcurrentDictionary<string, VerifyRun> _runs = new(StringComparer.Ordinal);

    /// <summary>The newest verify of the volume since this controller started, running or finished.</summary>
    public VerifyReport? Latest(string volume) => _runs.TryGetValue(volume, out var run) ? run.Report() : null;

    /// <summary>Starts a verify of <paramref name="v"/> in the background; null when one is running already.</summary>
    public VerifyReport? Start(Volume v, bool repair, int rangeBlocks, long maxBytesPerSecond)
    {
        var run = new VerifyRun(Guid.NewGuid().ToString("N")[..12], v.Name, repair, rangeBlocks, maxBytesPerSecond);
        run.Begin((v.TotalBlocks + rangeBlocks - 1) / rangeBlocks);
        while (true)
        {
            if (_runs.TryGetValue(v.Name, out var current))
            {
                if (current.Running) return null;
                if (!_runs.TryUpdate(v.Name, run, current)) continue;
            }
            else if (!_runs.TryAdd(v.Name, run))
            {
                continue;
            }
            break;
        }
        _ = Task.Run(() => RunAsync(v, run));
        return run.Report();
    }

    private async Task RunAsync(Volume v, VerifyRun run)
    {
        using var span = telemetry.Source.StartActivity("verify", ActivityKind.Internal, parentContext: default);
        span?.SetTag(TelemetryAttributes.Volume, v.Name).SetTag("tm.verify.id", run.Id).SetTag("tm.verify.repair", run.Repair);
        using var rate = new ByteRate(run.MaxBytesPerSecond);
        try
        {
            var ranges = await OrderedRangesAsync(v, run.RangeBlocks, CancellationToken.None);
            run.Begin(ranges.Count);
            logger.LogInformation("Volume {Volume}: verify {Id} of {Blocks} blocks in {Ranges} ranges{Repair}",
                v.Name, run.Id, v.TotalBlocks, ranges.Count, run.Repair ? ", repairing" : "");
            foreach (var first in ranges)
            {
                if (!v.Owned) throw new InvalidOperationException($"volume {v.Name} passed to another controller");
                var blocks = (int)Math.Min(run.RangeBlocks, v.TotalBlocks - first);
                if (blocks <= 0)
                {
                    run.RangeDone(0);
                    continue;
                }
                List<WrongRun> wrong;
                while (true)
                {
                    try
                    {
                        wrong = await CheckRangeAsync(v, first, blocks, rate, run);
                        break;
                    }
                    catch (VolumeChangedException) when (catalog.Find(v.Name) is { } now && !ReferenceEquals(now, v))
                    {
                        v = now; // a mirror attached or detached, or the volume grown: the range is checked on the volume as it is now
                    }
                }
                foreach (var m in wrong) await SettleAsync(v, m, run);
            }
            run.Finish(null);
            var report = run.Report();
            span?.SetTag("tm.verify.mismatches", report.Mismatches.Count).SetTag("tm.verify.blocks", report.BlocksChecked);
            logger.LogInformation("Volume {Volume}: verify {Id} done: {Blocks} blocks checked, {Mismatches} wrong runs ({Repaired} repaired), {Skipped} ranges skipped",
                v.Name, run.Id, report.BlocksChecked, report.Mismatches.Count, report.Mismatches.Count(m => m.Repaired), report.RangesSkipped);
        }
        catch (Exception ex)
        {
            run.Finish(ex.Message);
            span?.SetStatus(ActivityStatusCode.Error, ex.Message);
            logger.LogWarning("Volume {Volume}: verify {Id} failed: {Reason}", v.Name, run.Id, ex.Message);
        }
        await RecordAsync(v, run.Report());
    }

    /// <summary>Range starts, those holding writes reconciliation has not settled first, then the rest in order.</summary>
    private async Task<List<long>> OrderedRangesAsync(Volume v, int rangeBlocks, CancellationToken ct)
    {
        var hot = new SortedSet<long>();
        await using var cmd = store.DataSource.CreateCommand($"""
            SELECT DISTINCT first_block, block_count FROM {store.Schema}.recon_entries WHERE volume = @v
            """);
        cmd.Parameters.AddWithValue("v", v.Name);
        try
        {
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                var first = r.GetInt64(0);
                var last = first + Math.Max(1, r.GetInt32(1)) - 1;
                for (var range = first / rangeBlocks; range <= last / rangeBlocks; range++) hot.Add(range * rangeBlocks);
            }
        }
        catch (Npgsql.PostgresException ex) when (ex.SqlState == Npgsql.PostgresErrorCodes.UndefinedTable)
        {
            // Reconciliation has not created its tables yet: nothing is unsettled.
        }
        var all = new List<long>(hot.Where(f => f < v.TotalBlocks));
        for (long f = 0; f < v.TotalBlocks; f += rangeBlocks)
        {
            if (!hot.Contains(f)) all.Add(f);
        }
        return all;
    }

    /// <summary>Checks one range under its fence; returns the runs of wrong blocks per mirror, to repair after the fence.</summary>
    private async Task<List<WrongRun>> CheckRangeAsync(Volume v, long first, int blocks, ByteRate rate, VerifyRun run)
    {
        var ct = CancellationToken.None;
        var answers = new List<(Mirror Mirror, BlockChecksums Sums)>();
        // Paced before the range is fenced, never under the fence: writes to the range wait for the check, not for the rate.
        await rate.WaitAsync((long)blocks * v.BlockSize * v.Mirrors.Count(m => m.Current), ct);
        await v.ResyncLock.WaitAsync(ct);   // no repair (they pass fences) changes the range meanwhile
        var fence = new RangeFence(first, blocks);
        try
        {
            v.ThrowIfRetired();   // the volume changed shape meanwhile: the caller checks the range on the new one
            lock (v.WriteLock) v.Fences.Add(fence);
            foreach (var m in v.Mirrors.Where(m => m.Current))
            {
                try
                {
                    await pipeline.AppliedOverlappingAsync(v, m, first, blocks).WaitAsync(options.CopySourceWaitTimeout, ct);
                    await progress.WaitCaughtUpAsync(m.DeviceId, m.ObjectId, options.CopySourceWaitTimeout, ct);
                    if (!m.Current) continue;
                    var sums = await devices.ChecksumsAsync(m.DeviceId, m.ObjectId, first, blocks, ct)
                        ?? NothingWritten(v.BlockSize, first, blocks);
                    answers.Add((m, sums));
                }
                catch (Exception ex) when (ex is MirrorUnavailableException or TimeoutException or KafkaException or HttpRequestException)
                {
                    logger.LogInformation("Volume {Volume}: verify of [{First}, {End}) leaves out {Device}: {Reason}",
                        v.Name, first, first + blocks, m.DeviceId, ex.Message);
                }
            }
        }
        finally
        {
            lock (v.WriteLock) v.Fences.Remove(fence);
            fence.Released.TrySetResult();
            v.ResyncLock.Release();
        }
        if (answers.Count == 0)
        {
            run.RangeSkipped();
            return [];
        }
        run.RangeDone(blocks);
        return Compare(first, blocks, answers);
    }

    private static BlockChecksums NothingWritten(int blockSize, long first, int blocks)
    {
        var zero = BlockChecksums.OfZeros(blockSize);
        return new BlockChecksums(blockSize, first, Enumerable.Repeat(zero, blocks).ToArray(), new ulong[blocks]);
    }

    /// <summary>Per block: which mirrors hold it wrong, and which verified mirror holds it right.</summary>
    internal static List<WrongRun> Compare(long first, int blocks, List<(Mirror Mirror, BlockChecksums Sums)> answers)
    {
        var wrong = new List<WrongRun>();
        var open = new Dictionary<(Mirror, string), WrongRun>();
        for (var b = 0; b < blocks; b++)
        {
            // The right bytes: what the verified copies hold (all of them agree, or nobody can be trusted here).
            var verified = answers.Where(a => a.Sums.Recorded[b] != 0 && a.Sums.Actual[b] == a.Sums.Recorded[b]).ToList();
            var values = verified.Select(a => a.Sums.Actual[b]).Distinct().ToList();
            // Every mirror holds the same bytes: a checksum that disagrees is older than its block (a crash came
            // before it was made durable, see DeviceAgent/BlockStore/ObjectFiles), not a block that changed.
            var allAgree = answers.Count > 1 && answers.All(a => a.Sums.Actual[b] == answers[0].Sums.Actual[b]);
            foreach (var (m, sums) in answers)
            {
                var source = values.Count == 1 ? verified[0].Mirror : null;
                string? kind = null;
                if (sums.Recorded[b] != 0 && sums.Actual[b] != sums.Recorded[b])
                {
                    if ((values.Count == 1 && sums.Actual[b] == values[0]) || (values.Count == 0 && allAgree))
                    {
                        kind = "stale-checksum";
                        source ??= answers.First(a => a.Mirror != m).Mirror;
                    }
                    else
                    {
                        kind = "corrupt";
                        // No verified copy: a mirror holding exactly what this one recorded holds the right bytes
                        // (a block that peer never wrote reads as zeros, and zeros may be what was written here).
                        var recorded = sums.Recorded[b];
                        source ??= answers.Where(a => a.Mirror != m && a.Sums.Actual[b] == recorded).Select(a => a.Mirror).FirstOrDefault();
                    }
                }
                else if (sums.Recorded[b] == 0 && values.Count == 1 && sums.Actual[b] != values[0])
                {
                    kind = "divergent";
                }
                var key = (m, kind ?? "");
                if (kind is null)
                {
                    foreach (var k in open.Keys.Where(k => k.Item1 == m).ToList()) open.Remove(k);
                    continue;
                }
                // Extend the mirror's open run of this kind and source, or start one.
                if (open.TryGetValue(key, out var current) && current.Source == source && current.FirstBlock + current.Blocks == first + b)
                {
                    current.Blocks++;
                }
                else
                {
                    current = new WrongRun(m, first + b, 1, kind, source);
                    open[key] = current;
                    wrong.Add(current);
                }
            }
        }
        return wrong;
    }

    /// <summary>Repairs a run of wrong blocks from its verified source (when asked to), checks it again, and reports it.</summary>
    private async Task SettleAsync(Volume v, WrongRun w, VerifyRun run)
    {
        logger.LogWarning("Volume {Volume}: verify found blocks [{First}, {End}) of {Device} {Kind}", v.Name, w.FirstBlock, w.FirstBlock + w.Blocks, w.Mirror.DeviceId, w.Kind);
        if (w.Source is null)
        {
            run.Add(new VerifyMismatch(w.Mirror.DeviceId, w.FirstBlock, w.Blocks, w.Kind, null, false, "no mirror holds a verified copy of these blocks"));
            return;
        }
        if (!run.Repair)
        {
            run.Add(new VerifyMismatch(w.Mirror.DeviceId, w.FirstBlock, w.Blocks, w.Kind, w.Source.DeviceId, false, "not repaired: verify ran without repair"));
            return;
        }
        try
        {
            var used = await resyncs.CopyAsync(v, w.Source, w.Mirror, w.FirstBlock, w.Blocks, w.FirstBlock >= v.Blocks, tag: null, CancellationToken.None);
            var after = await devices.ChecksumsAsync(w.Mirror.DeviceId, w.Mirror.ObjectId, w.FirstBlock, w.Blocks, CancellationToken.None);
            var intact = after is not null && Enumerable.Range(0, w.Blocks).All(i => after.Recorded[i] != 0 && after.Actual[i] == after.Recorded[i]);
            run.Add(new VerifyMismatch(w.Mirror.DeviceId, w.FirstBlock, w.Blocks, w.Kind, used, intact, intact ? null : "still wrong after the copy"));
            if (intact) run.Repaired((long)w.Blocks * v.BlockSize);
        }
        catch (Exception ex) when (ex is NoCopySourceException or MirrorUnavailableException or TimeoutException or HttpRequestException or KafkaException
                                       or VolumeChangedException)
        {
            run.Add(new VerifyMismatch(w.Mirror.DeviceId, w.FirstBlock, w.Blocks, w.Kind, w.Source.DeviceId, false, "repair failed: " + ex.Message));
        }
    }

    private async Task RecordAsync(Volume v, VerifyReport report)
    {
        try
        {
            await catalog.RecordVerifyAsync(v,
                new VerifyCompleted(report.Id, report.State, report.BlocksChecked, report.RangesSkipped, report.Mismatches, report.BytesRepaired, report.Error),
                CancellationToken.None);
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or InvalidOperationException or VolumeTakenOverException)
        {
            logger.LogWarning("Volume {Volume}: verify {Id} could not be recorded: {Reason}", v.Name, report.Id, ex.Message);
        }
    }

    internal sealed class WrongRun(Mirror mirror, long firstBlock, int blocks, string kind, Mirror? source)
    {
        public Mirror Mirror { get; } = mirror;

        public long FirstBlock { get; } = firstBlock;

        public int Blocks { get; set; } = blocks;

        public string Kind { get; } = kind;

        public Mirror? Source { get; } = source;
    }
}
