using System.Collections.Concurrent;
using System.Diagnostics;
using Confluent.Kafka;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Controller.Tagging;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Fanout;

/// <summary>
/// Flow 1: tag a write, make one transaction per mirror (M1), put each on its device's topic, and answer
/// when the log holds every copy (or when every device applied it, if asked). A copy that cannot be delivered
/// degrades its mirror; the write succeeds while the volume's minimum number of mirrors hold it.
/// Repairs (flow 6) go through the same path with a new tag, to their target mirror only.
/// </summary>
internal sealed class WritePipeline(
    DeviceLog log,
    TagGenerator tags,
    VolumeCatalog catalog,
    ControllerOptions options,
    ControllerTelemetry telemetry,
    ILogger<WritePipeline> logger)
{
    private readonly ConcurrentDictionary<long, InflightWrite> _inflight = new();
    private readonly SortedSet<long> _undelivered = [];
    private readonly Lock _deliveryLock = new();

    /// <summary>Every write with a sequence up to this has been delivered or has failed (the barrier's <c>upToSeq</c>).</summary>
    public long DeliveredUpTo
    {
        get
        {
            // Read the issued counter before looking at the set: a tag issued after this read is not covered.
            var issued = tags.Issued;
            lock (_deliveryLock)
                return _undelivered.Count == 0 ? issued : Math.Min(issued, _undelivered.Min - 1);
        }
    }

    public int InflightCount => _inflight.Count;

    /// <summary>
    /// Waits until every write of <paramref name="v"/> sent so far is in its mirrors' logs or has failed there (a change
    /// of the volume's shape holds new writes meanwhile); <see cref="TimeoutException"/> after <paramref name="timeout"/>.
    /// </summary>
    public async Task WaitDeliveredAsync(Volume v, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            int pending;
            lock (_deliveryLock) pending = v.Inflight.Keys.Count(_undelivered.Contains);
            if (pending == 0) return;
            if (Stopwatch.GetTimestamp() > deadline)
                throw new TimeoutException($"{pending} writes to volume {v.Name} were still not in their mirrors' logs after {timeout.TotalSeconds:0.#} s");
            await Task.Delay(5, ct);
        }
    }

    /// <summary>
    /// A write; <paramref name="origin"/> (who asked, and an intake request's <c>producer/request</c>) travels with
    /// every copy and is recorded by each device with its entry (docs/design.md, "Who wrote a block" and "Producers
    /// that publish writes").
    /// </summary>
    public Task<WriteResult> WriteAsync(Volume v, TransactionKind kind, long firstBlock, byte[] data, bool waitApplied, WriteOrigin origin, CancellationToken ct) =>
        WriteAnyAsync(v, kind, firstBlock, data.Length / v.BlockSize, data, waitApplied, origin, ct);

    /// <summary>
    /// Zeroes <paramref name="blocks"/> blocks of the volume's base range from <paramref name="firstBlock"/>: one
    /// <see cref="TransactionKind.Zero"/> per mirror, tagged, fenced and acknowledged like a write of zero blocks but
    /// carrying no data (NBD's <c>TRIM</c> and <c>WRITE_ZEROES</c>).
    /// </summary>
    public Task<WriteResult> ZeroAsync(Volume v, long firstBlock, int blocks, bool waitApplied, WriteOrigin origin, CancellationToken ct)
    {
        if (blocks <= 0 || firstBlock < 0 || firstBlock > v.Blocks - blocks)
            throw new ArgumentOutOfRangeException(nameof(blocks), $"blocks [{firstBlock}, +{blocks}) are not inside volume {v.Name}'s {v.Blocks} blocks");
        return WriteAnyAsync(v, TransactionKind.Zero, firstBlock, blocks, [], waitApplied, origin, ct);
    }

    private async Task<WriteResult> WriteAnyAsync(
        Volume v, TransactionKind kind, long firstBlock, int blocks, byte[] data, bool waitApplied, WriteOrigin origin, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var outcome = "failed";
        try
        {
            while (true)
            {
                try
                {
                    var result = await WriteCoreAsync(v, kind, firstBlock, blocks, data, waitApplied, origin, ct);
                    outcome = "ok";
                    return result;
                }
                catch (VolumeChangedException) when (catalog.Find(v.Name) is { } now && !ReferenceEquals(now, v))
                {
                    // The volume's mirrors or size changed while this write waited, before it took a tag: it starts
                    // again on the volume as it is now (its flow control and checks too).
                    v = now;
                }
            }
        }
        finally
        {
            var tags = new TagList { { TelemetryAttributes.Volume, v.Name }, { TelemetryAttributes.Kind, KindName(kind) }, { "tm.outcome", outcome } };
            telemetry.WriteDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tags);
            if (outcome == "ok")
            {
                var volume = new KeyValuePair<string, object?>(TelemetryAttributes.Volume, v.Name);
                telemetry.Writes.Add(1, volume);
                telemetry.WriteBytes.Add(data.Length, volume);
            }
        }
    }

    /// <summary>
    /// The refusal of a write on a volume this controller may not write now: before its copies were sent (nothing of it
    /// is anywhere: safe to write again), or after (<paramref name="sent"/>: it may be on the mirrors).
    /// </summary>
    private static WriteFailedException NotWritable(Volume v, bool sent = false) => new((v.Owned, sent) switch
    {
        (true, false) => $"volume {v.Name}: this controller could not renew its lease in time, so it takes no writes until it does (PostgreSQL unreachable?)",
        (false, false) => $"volume {v.Name} is owned by another controller",
        (true, true) => $"volume {v.Name}: this controller's lease ran short while the write's copies were sent, so it is not acknowledged; it may or may not be on the mirrors (write it again)",
        (false, true) => $"volume {v.Name} passed to another controller while the write's copies were sent, so it is not acknowledged; it may or may not be on the mirrors",
    });

    private static string KindName(TransactionKind kind) => kind switch
    {
        TransactionKind.Write => "write",
        TransactionKind.Append => "append",
        TransactionKind.Repair => "repair",
        TransactionKind.Zero => "zero",
        _ => "barrier",
    };

    private async Task<WriteResult> WriteCoreAsync(
        Volume v, TransactionKind kind, long firstBlock, int blocks, byte[] data, bool waitApplied, WriteOrigin origin, CancellationToken ct)
    {
        if (!v.Writable) throw NotWritable(v);
        if (kind == TransactionKind.Append)
            firstBlock = await catalog.ReserveExtensionAsync(v, blocks, ct);
        // Flow control before the tag is taken: a lagging device holds writes back, but not forever. A device being
        // rebuilt applies nothing new until its replay is done: its log holds what it is sent meanwhile.
        foreach (var m in v.Mirrors)
        {
            if (!m.ReceivesWrites || m.State == MirrorState.Rebuilding) continue;
            if (!await log.Channel(m.DeviceId).WaitForRoomAsync(data.Length, options.LagTimeout, ct))
                await DegradeAsync(v, m, $"device lagged more than {options.MaxLagBytes} bytes behind for {options.LagTimeout.TotalSeconds:0.#}s");
        }
        await Faults.BeforeEnqueueAsync(options, kind, firstBlock, ct);

        var sends = new Send[v.Mirrors.Length];
        InflightWrite? write;
        while ((write = Enqueue(v, kind, firstBlock, blocks, data, sends, AllMirrors(v), out var fence, origin: origin)) is null)
            await fence!.WaitAsync(ct);
        var outcomes = new string?[v.Mirrors.Length];
        var holding = await AwaitDeliveriesAsync(v, write, sends, outcomes);
        // Activity.Current is ASP.NET Core's (unrecorded) request activity when nobody traces: tag only a recorded span.
        if (Activity.Current is { IsAllDataRequested: true } span)
        {
            span.SetTag(TelemetryAttributes.Tag, write.Tag.ToString()).SetTag("tm.mirrors.holding", holding);
            if (origin.Principal is { } who) span.SetTag("tm.principal", System.Text.Encoding.ASCII.GetString(who));
        }
        Interlocked.Increment(ref v.WritesAccepted);
        Interlocked.Add(ref v.BytesAccepted, data.Length);

        // The lease may have run short while the copies travelled: past the deadline another controller may own
        // the volume, so this write is not acknowledged (its fate is unknown, like any write without an answer), and
        // the answer says so: unlike a write refused before it was sent, it may be on the mirrors.
        if (!v.Writable) throw NotWritable(v, sent: true);
        if (holding < v.MinMirrors)
        {
            var why = string.Join("; ", v.Mirrors.Select(m => $"{m.DeviceId}: {outcomes[m.Index] ?? $"not sent ({m.State})"}"));
            throw new WriteFailedException($"write {write.Tag} reached {holding} of {v.Mirrors.Length} mirrors; volume {v.Name} needs {v.MinMirrors} ({why})");
        }
        var applied = false;
        if (waitApplied)
        {
            try
            {
                await write.AllApplied.Task.WaitAsync(options.AppliedWaitTimeout, ct);
                applied = true;
            }
            catch (TimeoutException)
            {
                logger.LogWarning("Write {Tag}: not applied on every mirror within {Timeout}", write.Tag, options.AppliedWaitTimeout);
            }
        }
        return new WriteResult(write.Tag.ToString(), write.FirstBlock, blocks, holding, v.Mirrors.Length, applied);
    }

    /// <summary>
    /// Sends a repair of a range to one mirror with a new tag, past any fence (the caller holds it), and
    /// waits until the target applied it. Ordered with the target's other writes because it goes through its log.
    /// </summary>
    public async Task<Tag> RepairAsync(Volume v, Mirror target, long firstBlock, byte[] data, CancellationToken ct)
    {
        using (await log.Channel(target.DeviceId).Repairs.EnterAsync(data.Length, ct))
        {
            var sends = new Send[v.Mirrors.Length];
            var write = Enqueue(v, TransactionKind.Repair, firstBlock, data.Length / v.BlockSize, data, sends, 1 << target.Index, out _, bypassFences: true)!;
            if (await AwaitDeliveriesAsync(v, write, sends, new string?[v.Mirrors.Length]) == 0)
                throw new MirrorUnavailableException(target.DeviceId);
            await write.AppliedOnAsync(target.Index).WaitAsync(options.AppliedWaitTimeout, ct);
            return write.Tag;
        }
    }

    private static int AllMirrors(Volume v) => (1 << v.Mirrors.Length) - 1;

    private async Task<int> AwaitDeliveriesAsync(Volume v, InflightWrite write, Send[] sends, string?[] outcomes)
    {
        var holding = 0;
        List<(Mirror Mirror, string Reason)>? missed = null;
        try
        {
            foreach (var (i, delivery, tokens, span) in sends)
            {
                if (delivery is null) continue;
                var m = v.Mirrors[i];
                try
                {
                    var result = await delivery;
                    write.MarkDelivered(i, result.Partition.Value, result.Offset.Value);
                    holding++;
                    outcomes[i] = "in the log";
                    if (span is not null)
                    {
                        span.SetTag(KafkaTracing.Partition, result.Partition.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
                        span.SetTag(KafkaTracing.Offset, result.Offset.Value);
                        span.Stop();
                    }
                }
                catch (ProduceException<byte[]?, byte[]?> ex)
                {
                    span?.SetStatus(ActivityStatusCode.Error, ex.Error.Reason);
                    span?.Stop();
                    var channel = log.Channel(m.DeviceId);
                    outcomes[i] = "not delivered: " + ex.Error.Reason;
                    // Before the write can settle: from here on no read or copy may take this mirror as current.
                    m.MarkMissed(write.Tag.Seq);
                    // The device never saw these tokens: they ride on a later transaction. Retiring twice is harmless.
                    if (tokens is not null) channel.Tokens.Return(tokens);
                    if (write.MarkFailed(i) is (true, var settled))
                    {
                        channel.OnSettled(write.Bytes);
                        if (settled) Settle(write);
                    }
                    (missed ??= []).Add((m, $"copy of {write.Tag} could not be delivered to {channel.Topic}: {ex.Error.Reason}"));
                }
            }
        }
        finally
        {
            // Delivered or failed, whatever happens next: barriers must go on covering it.
            lock (_deliveryLock) _undelivered.Remove(write.Tag.Seq);
        }
        // Sent to no mirror at all (every target skipped, e.g. a repair to a degraded mirror): no acknowledgement
        // will ever settle it, so settle it here rather than leave it in flight forever.
        if (write.NothingPending) Settle(write);
        // Skipped because its degradation is still being recorded: this write waits for that record too.
        foreach (var m in v.Mirrors)
        {
            if (sends[m.Index].Delivery is null && (write.Targets & (1 << m.Index)) != 0 && m.PendingDegrade is { } pending)
                (missed ??= []).Add((m, pending));
        }
        // Recorded before the write is answered: a mirror left recorded in sync holds every acknowledged write.
        if (missed is not null)
        {
            foreach (var (m, reason) in missed)
                await DegradeAsync(v, m, reason);
        }
        return holding;
    }

    /// <summary>
    /// Takes the tag and enqueues every copy under the volume's lock, so each mirror's log gets this volume's
    /// writes in tag order. Nothing here waits on the network. Returns null, with the fence to wait for, when
    /// the range is being resynced.
    /// </summary>
    private InflightWrite? Enqueue(
        Volume v, TransactionKind kind, long firstBlock, int blocks, byte[] data, Send[] sends, int targets,
        out Task? fence, bool bypassFences = false, WriteOrigin origin = default)
    {
        Span<long> tokenBuffer = stackalloc long[TransactionCodec.MaxTokensPerTransaction];
        lock (v.WriteLock)
        {
            fence = bypassFences ? null : v.Fences.Find(f => f.Overlaps(firstBlock, blocks))?.Released.Task;
            if (fence is not null) return null;
            // Replaced by a change of the volume's shape (which held every write at its fence): nothing is sent from the old shape.
            v.ThrowIfRetired();
            var tag = tags.Next();
            var write = new InflightWrite(tag, v, firstBlock, blocks, data.Length, targets);
            _inflight[tag.Seq] = write;
            v.Inflight[tag.Seq] = write;
            lock (_deliveryLock) _undelivered.Add(tag.Seq);
            var fields = new TransactionHeader(kind, tag, firstBlock, blocks, v.BlockSize, v.Blocks, OwnerEpoch: v.OwnerEpoch);
            // Every copy is counted as pending, and its bytes as sent, before the first goes: once in the log a copy may
            // be applied and acknowledged before this thread runs again, and a write whose other copies were not counted
            // yet would settle as applied everywhere (answered, its tokens returned) with a copy still to send, and the
            // bytes counted after their acknowledgement would stay in the device's backlog for good.
            var sending = 0;
            foreach (var m in v.Mirrors)
            {
                if ((targets & (1 << m.Index)) == 0) continue;
                if (!m.ReceivesWrites)
                {
                    m.MarkMissed(tag.Seq);
                    write.MarkSkipped(m.Index);
                    if (Activity.Current is { IsAllDataRequested: true } request)
                    {
                        request.AddEvent(new ActivityEvent("mirror skipped", tags: new ActivityTagsCollection
                        {
                            [TelemetryAttributes.Device] = m.DeviceId,
                            ["tm.mirror.state"] = m.State.ToString(),
                        }));
                    }

                    continue;
                }
                sending |= 1 << m.Index;
                write.MarkSent(m.Index);
                log.Channel(m.DeviceId).OnSent(data.Length);
            }
            var first = true;
            foreach (var m in v.Mirrors)
            {
                if ((sending & (1 << m.Index)) == 0) continue;
                var channel = log.Channel(m.DeviceId);
                var n = channel.Tokens.Take(tokenBuffer);
                var span = StartProduceSpan(v, m, channel, kind, tag, firstBlock, blocks, data.Length);
                var delivery = log.SendAsync(channel, m.ObjectIdUtf8, fields, m.ObjectIdUtf8, tokenBuffer[..n], data, span, origin);
                sends[m.Index] = new Send(m.Index, delivery, n == 0 ? null : tokenBuffer[..n].ToArray(), span);
                if (first)
                {
                    first = false;
                    Faults.AfterFirstCopy(options, kind, firstBlock, tag.Seq, log);
                }
            }
            return write;
        }
    }

    /// <summary>
    /// The produce span of one copy: a child of the request (or resync) span, ended on delivery with the
    /// partition and offset the copy got. Not made current: the caller goes on under its own span.
    /// </summary>
    private Activity? StartProduceSpan(Volume v, Mirror m, DeviceChannel channel, TransactionKind kind, Tag tag, long firstBlock, int blocks, int bytes)
    {
        var parent = Activity.Current;
        var span = telemetry.Source.StartActivity("send " + channel.Topic, ActivityKind.Producer);
        if (span is null) return null;
        Activity.Current = parent;
        if (span.IsAllDataRequested)
        {
            span.SetTag(KafkaTracing.System, "kafka");
            span.SetTag(KafkaTracing.OperationType, "send");
            span.SetTag(KafkaTracing.Destination, channel.Topic);
            span.SetTag(KafkaTracing.Key, m.ObjectId);
            span.SetTag(TelemetryAttributes.Tag, tag.ToString());
            span.SetTag(TelemetryAttributes.Volume, v.Name);
            span.SetTag(TelemetryAttributes.Device, m.DeviceId);
            span.SetTag(TelemetryAttributes.Kind, KindName(kind));
            span.SetTag(TelemetryAttributes.FirstBlock, firstBlock);
            span.SetTag(TelemetryAttributes.Blocks, blocks);
            span.SetTag("messaging.message.body.size", bytes);
        }
        return span;
    }

    /// <summary>
    /// Records the mirror as degraded (persisted first, retried while PostgreSQL is away), then settles every
    /// write still waiting for it. If the state cannot be recorded the caller's write is not acknowledged.
    /// </summary>
    public async Task DegradeAsync(Volume v, Mirror m, string reason)
    {
        // No copy goes to it from now on; writes that skip it wait for the record below like this one.
        if (m.State != MirrorState.Degraded) m.PendingDegrade ??= reason;
        try
        {
            await catalog.SetMirrorStateAsync(v, m, MirrorState.Degraded, reason, CancellationToken.None);
            m.PendingDegrade = null;
        }
        catch (Exception ex) when (ex is Polly.Timeout.TimeoutRejectedException or VolumeTakenOverException || Hosting.TransientErrors.IsTransient(ex))
        {
            throw new WriteFailedException($"mirror {m.DeviceId} of {v.Name} missed a write ({reason}) and that could not be recorded: {ex.Message}");
        }
        OnMirrorLost(v, m);
    }

    /// <summary>A device recorded an entry for one of our writes (flow 3).</summary>
    public void OnApplied(string deviceId, Tag tag, long token)
    {
        if (tag.ControllerId != tags.ControllerId || tag.Epoch != tags.Epoch) return; // an earlier epoch: reconciliation's business
        if (!_inflight.TryGetValue(tag.Seq, out var write)) return;                   // already settled: a repeated acknowledgement
        var m = write.Volume.MirrorOn(deviceId);
        if (m is null) return;
        // Its bytes leave the device's backlog once: an acknowledgement repeated (the agent's, every few seconds while the
        // entry is live, or reconciliation's retire request) or one of a copy already counted as failed would take them
        // off again, and flow control would let the device fall further behind than MaxLagBytes.
        if (write.MarkApplied(m.Index, token) is not (true, var settled)) return;
        log.Channel(deviceId).OnSettled(write.Bytes);
        if (settled) Settle(write);
    }

    private void Settle(InflightWrite write)
    {
        if (!_inflight.TryRemove(write.Tag.Seq, out _)) return;
        write.Volume.Inflight.TryRemove(write.Tag.Seq, out _);
        if (write.ReachedEveryMirror)
        {
            foreach (var m in write.Volume.Mirrors)
            {
                if ((write.Targets & (1 << m.Index)) != 0)
                    log.Channel(m.DeviceId).Tokens.Enqueue(write.TokenOf(m.Index));
            }
        }
        write.AllApplied.TrySetResult();
    }

    /// <summary>
    /// This controller lost the volume (or is about to replace its stale copy of it after taking it back): its
    /// writes still in flight will never be answered as acknowledged (the lease check before the answer fails),
    /// and a copy of theirs that is lost (refused as fenced, truncated) would otherwise keep them, and their bytes
    /// in the flow-control backlog, forever. They are settled as failed everywhere still pending; whatever of
    /// them a device applied is in its log, which a new owner catches up with before it reads or copies.
    /// </summary>
    public int Abandon(Volume v)
    {
        var abandoned = 0;
        foreach (var w in WritesOf(v))
        {
            abandoned++;
            var mirrors = w.Volume.Mirrors;
            for (var i = 0; i < mirrors.Length; i++)
            {
                var (wasPending, settled) = w.MarkFailed(i);
                if (wasPending) log.Channel(mirrors[i].DeviceId).OnSettled(w.Bytes);
                if (settled) Settle(w);
            }
        }
        return abandoned;
    }

    /// <summary>
    /// Writes in flight to the volume, those of the objects it replaced included (a change of its shape swaps the
    /// object while writes sent before are still being applied): a mirror lost or a log truncated concerns them too.
    /// </summary>
    private IEnumerable<InflightWrite> WritesOf(Volume v) =>
        _inflight.Values.Where(w => ReferenceEquals(w.Volume, v) || (w.Volume.Retired && w.Volume.Name == v.Name));

    /// <summary>
    /// Writes sent to <paramref name="m"/> will not be applied (its log is undeliverable, or fell off under it):
    /// settle them without it, so nothing waits for it; reconciliation copies what it lacks.
    /// </summary>
    public void OnMirrorLost(Volume v, Mirror m)
    {
        var channel = log.Channel(m.DeviceId);
        foreach (var w in WritesOf(v))
        {
            if (w.Volume.MirrorOn(m.DeviceId) is not { } wm) continue;
            // Before the copy faults or the write settles: nobody may take this mirror as current after that.
            if ((w.Targets & (1 << wm.Index)) != 0 && !w.AppliedOnAsync(wm.Index).IsCompletedSuccessfully) wm.MarkMissed(w.Tag.Seq);
            var (wasPending, settled) = w.MarkFailed(wm.Index);
            if (wasPending) channel.OnSettled(w.Bytes);
            if (settled) Settle(w);
        }
    }

    /// <summary>
    /// <paramref name="m"/>'s log was truncated under its device (again, while it is being copied to): copies that
    /// were put in that partition below the offset the log starts at now will never be applied; they are settled
    /// without it. Copies still in the log, or not yet known to be in it, are left alone: the device applies them.
    /// Failing them too made every repeated notice fail the full copy's step in flight, whose next attempt pushed
    /// the log's start past the device again, and so on forever. Idempotent: every repeat of the notice may call it.
    /// </summary>
    public void OnTruncated(Volume v, Mirror m, int partition, long logStartOffset)
    {
        var channel = log.Channel(m.DeviceId);
        foreach (var w in WritesOf(v))
        {
            if (w.Volume.MirrorOn(m.DeviceId) is not { } wm) continue;
            if ((w.Targets & (1 << wm.Index)) == 0 || w.AppliedOnAsync(wm.Index).IsCompleted) continue;
            if (w.LogPositionOf(wm.Index) is not { } at || at.Partition != partition || at.Offset >= logStartOffset) continue;
            wm.MarkMissed(w.Tag.Seq);
            var (wasPending, settled) = w.MarkFailed(wm.Index);
            if (wasPending) channel.OnSettled(w.Bytes);
            if (settled) Settle(w);
        }
    }

    /// <summary>
    /// Completes when <paramref name="m"/> has applied every write in flight that overlaps the range; faults with
    /// <see cref="MirrorUnavailableException"/> if it missed one (a failed or skipped copy is not "applied").
    /// </summary>
    public Task AppliedOverlappingAsync(Volume v, Mirror m, long firstBlock, long blocks) =>
        Task.WhenAll(v.Inflight.Values.Where(w => w.Overlaps(firstBlock, blocks)).Select(w => w.AppliedOnAsync(m.Index)));

    private readonly record struct Send(int Mirror, Task<DeliveryResult<byte[]?, byte[]?>>? Delivery, long[]? Tokens, Activity? Span);

    /// <summary>
    /// A device refused its copy of one of our writes (dead-lettered or quarantined: it will never apply it).
    /// Like a copy that could not be delivered: the write settles without that mirror, which is degraded, so
    /// nothing waits for it forever; reconciliation copies the range once the device passes a barrier after it.
    /// </summary>
    public async Task OnDeadLetteredAsync(string deviceId, Tag tag, string reason)
    {
        if (tag.ControllerId != tags.ControllerId || tag.Epoch != tags.Epoch) return; // an earlier epoch: reconciliation's business
        if (!_inflight.TryGetValue(tag.Seq, out var write)) return;                   // settled already
        if (write.Volume.MirrorOn(deviceId) is not { } m) return;
        if (write.AppliedOnAsync(m.Index).IsCompleted) return;                        // applied, failed or skipped there already
        // As if skipped, and before the write can settle: the mirror is not current from here on, nor in sync
        // again before the device passed a barrier covering this write (when reconciliation copies it).
        m.MarkMissed(tag.Seq);
        if (write.MarkFailed(m.Index) is not (true, var settled)) return;
        log.Channel(deviceId).OnSettled(write.Bytes);
        if (settled) Settle(write);
        await DegradeAsync(write.Volume, m, $"device {deviceId} dead-lettered its copy of {tag}: {reason}");
    }
}
