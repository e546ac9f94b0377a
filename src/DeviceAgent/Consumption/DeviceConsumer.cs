using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using MassTransit;
using Microsoft.Extensions.Options;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Bus;
using TaggedMirror.Contracts.TagTable;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.DeviceAgent.BlockStore;
using TaggedMirror.DeviceAgent.TagTable;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;
using TaggedMirror.Hosting.Kafka;

namespace TaggedMirror.DeviceAgent.Consumption;

/// <summary>
/// The device's apply loop (flow 2): consume a batch from the device topic, apply it to the block store,
/// flush, then record tag-table events, objects and offsets in one PostgreSQL transaction, then acknowledge
/// with tokens over the bus. Any failure (PostgreSQL restarted, broker gone) drops the in-memory state and
/// starts again from what PostgreSQL holds, so nothing is recorded twice and nothing is skipped.
/// </summary>
internal sealed class DeviceConsumer(
    IOptions<AgentOptions> agentOptions,
    TaggedMirrorOptions options,
    EventStreams store,
    ObjectFiles files,
    DeviceStatus status,
    IBus bus,
    AgentTelemetry telemetry,
    RebuildRequests rebuilds,
    ILogger<DeviceConsumer> logger) : BackgroundService
{
    private readonly AgentOptions _agent = agentOptions.Value;
    private readonly DeviceRepository _repository = new(store, agentOptions.Value.DeviceId);
    private readonly TransactionApplier _applier = new(files);

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => RunAsync(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();

    // After a failure the loop starts again from what PostgreSQL holds after 200 ms, doubling: at most every second
    // while a database or broker is away (a try costs a connection attempt; an agent idle for longer than needed after
    // they return lags towards LagTimeout and gets its mirror degraded), at most every 5 s for a device fault. Once a
    // batch has been recorded, the next failure starts again at 200 ms: one outage does not slow the recovery from the next.
    private static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxRetry = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxFaultRetry = TimeSpan.FromSeconds(5);
    private bool _recorded;

    /// <summary>
    /// The wait before the next try: the first, or the one after <paramref name="last"/> when nothing was recorded
    /// since; and from now on, nothing was.
    /// </summary>
    private TimeSpan NextRetry(TimeSpan last, TimeSpan max)
    {
        var next = _recorded || last <= TimeSpan.Zero ? FirstRetry : TimeSpan.FromMilliseconds(Math.Min(last.TotalMilliseconds * 2, max.TotalMilliseconds));
        _recorded = false;
        return next;
    }

    private async Task RunAsync(CancellationToken ct)
    {
        var backoff = TimeSpan.Zero;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await ConsumeUntilFailureAsync(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (DeviceFaultException ex)
            {
                backoff = NextRetry(backoff, MaxFaultRetry);
                // Disk full or a failing disk: nothing of the batch is recorded and nothing is skipped; the same
                // batch is tried again. The controller hears it at every attempt, so a report lost on the bus is not
                // lost for good, and takes the mirror out of reads and writes' way until the device catches up.
                var since = status.SetFault(ex.Message);
                status.LastError = ex.Message;
                logger.LogError(ex.InnerException, "Device {Device} faulted: {Reason}; nothing recorded or skipped, retrying in {Delay}", _agent.DeviceId, ex.Message, backoff);
                await PublishSafelyAsync(new DeviceFaulted(_agent.DeviceId, ex.Message, since), ct);
                await Task.Delay(backoff, ct);
            }
            catch (Exception ex)
            {
                backoff = NextRetry(backoff, MaxRetry);
                status.LastError = ex.Message;
                logger.LogWarning(ex, "Device {Device}: apply loop failed; restarting from the state PostgreSQL holds in {Delay}", _agent.DeviceId, backoff);
                await Task.Delay(backoff, ct);
            }
        }
    }

    private async Task ConsumeUntilFailureAsync(CancellationToken ct)
    {
        var bootstrap = options.ResolveKafkaBootstrap();
        var state = await _repository.LoadAsync(ct);
        await ContinueRebuildAsync(state, ct);
        status.Update(state);
        await AcknowledgeLiveAsync(state, TimeSpan.Zero, ct);
        await SendTruncationNoticesAsync(state, ct);

        var topic = Topics.Device(_agent.DeviceId);
        var partitions = DiscoverPartitions(bootstrap, topic);
        // A broker reported gone (librdkafka: transport error) makes a quiet log suspect: while it is quiet the log's
        // broker is looked for every 100 ms (LeaderProbe), not once a second, so a mirror's log that came back is read,
        // and its resync decided, that much sooner. Messages that arrive after the report end it; ones that arrive
        // within a second of it may have been fetched before the broker went.
        long brokerLostAt = 0;
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(KafkaSettings.DeviceConsumer(bootstrap, _agent.DeviceId))
            .SetErrorHandler((_, e) =>
            {
                if (e.Code is ErrorCode.Local_Transport or ErrorCode.Local_AllBrokersDown) Interlocked.Exchange(ref brokerLostAt, Stopwatch.GetTimestamp());
                logger.LogDebug("Kafka: {Reason}", e.Reason);
            })
            .Build();
        // Declared after the consumer, so disposed (waiting for its request) before it.
        using var probe = new LeaderProbe(consumer, topic);
        using var deadLetters = new ProducerBuilder<byte[]?, byte[]?>(
            KafkaSettings.Producer(bootstrap, "tm-agent-dlq-" + _agent.DeviceId, _agent.DeadLetterTimeout)).Build();
        consumer.Assign(partitions.Select(p => new TopicPartitionOffset(topic, p, state.NextOffsets.GetValueOrDefault(p, 0))));
        status.Running = true;
        status.LastError = null;
        logger.LogInformation("Device {Device}: consuming {Topic} ({Partitions} partitions) from {Offsets}",
            _agent.DeviceId, topic, partitions.Count, string.Join(",", partitions.Select(p => $"{p}@{state.NextOffsets.GetValueOrDefault(p, 0)}")));

        var batch = new List<ConsumeResult<byte[]?, byte[]?>>(_agent.BatchMaxMessages);
        var held = new HeldReplay();
        var lastReack = Stopwatch.StartNew();
        while (!ct.IsCancellationRequested)
        {
            batch.Clear();
            if (rebuilds.TryTake(out var request) && await BeginRebuildAsync(consumer, topic, partitions, state, request, ct) is { } logStart)
            {
                // The consumer reads the log from its start already (BeginRebuildAsync); the state, changed as the
                // rebuild recorded it, starts at the same offsets.
                await ContinueRebuildAsync(state, ct);
                status.Update(state);
                if (partitions.Any(p => state.NextOffsets.GetValueOrDefault(p, 0) != logStart[p]))
                    consumer.Assign(partitions.Select(p => new TopicPartitionOffset(topic, p, state.NextOffsets.GetValueOrDefault(p, 0))));
                continue;
            }
            try
            {
                Collect(consumer, batch, ct);
            }
            catch (ConsumeException ex) when (IsOffsetOutOfRange(ex.Error.Code))
            {
                // What was replayed up to here is recorded first: the truncation is recorded from the state as recorded.
                if (held.Batch is not null) await RecordHeldAsync(held, state, deadLetters, topic, ct);
                await HandleTruncationAsync(consumer, topic, partitions, state, ct);
                return; // reload state and reassign at the new offsets
            }
            var lostAt = Interlocked.Read(ref brokerLostAt);
            if (batch.Count > 0)
            {
                if (lostAt != 0 && Stopwatch.GetElapsedTime(lostAt) > TimeSpan.FromSeconds(1)) Interlocked.CompareExchange(ref brokerLostAt, 0, lostAt);
                if (held.Batch is not null || ReplaysOnly(batch, state))
                {
                    Hold(held, batch, state);
                    if (!held.Due(state, _agent)) continue;
                    await RecordHeldAsync(held, state, deadLetters, topic, ct);
                }
                else
                {
                    await ApplyAndRecordAsync(batch, state, deadLetters, topic, ct);
                }
            }
            else if (held.Batch is not null)
            {
                // Nothing more came within the wait: what was replayed is recorded now.
                await RecordHeldAsync(held, state, deadLetters, topic, ct);
            }
            else if (lostAt != 0)
            {
                probe.Poke();
            }
            // Under load too: a device that never idles must still repeat what the bus may have lost.
            if (lastReack.Elapsed > _agent.ReacknowledgeAfter)
            {
                await AcknowledgeLiveAsync(state, _agent.ReacknowledgeAfter, ct);
                await SendTruncationNoticesAsync(state, ct);
                lastReack.Restart();
            }
        }
    }

    /// <summary>
    /// A rebuild's replayed batches applied and not recorded yet (docs/design.md, "Rebuilding a device from its log":
    /// the replay's record). Applied as they come, so the files are written while the next messages are fetched; flushed
    /// and recorded together once <see cref="Due"/>. A failure drops it with the rest of the in-memory state, and the
    /// reload applies the same messages again from the last record.
    /// </summary>
    private sealed class HeldReplay
    {
        /// <summary>How long replayed batches may go unrecorded: what a kill -9 makes the rebuild replay again, at most.</summary>
        public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(1);

        public AppliedBatch? Batch;
        public readonly List<ConsumeResult<byte[]?, byte[]?>> Messages = [];
        public long ExpectedVersion;
        public long Bytes;
        public long Since;

        /// <summary>A message the replay does not cover (new to the device) was applied into it.</summary>
        public bool PastReplay;

        /// <summary>
        /// Recorded now: the replay reached its end (or is not running any more), a message past it came, or the held
        /// batches reached the agent's batch limits or <see cref="MaxAge"/>.
        /// </summary>
        public bool Due(DeviceState state, AgentOptions agent) =>
            PastReplay || state.Rebuild is not { Completed: false } rebuild || rebuild.ReachedEnd(state.NextOffsets)
            || Bytes >= agent.BatchMaxBytes || Messages.Count >= 16 * agent.BatchMaxMessages
            || Stopwatch.GetElapsedTime(Since) >= MaxAge;

        public void Clear()
        {
            Batch = null;
            Messages.Clear();
            Bytes = 0;
            PastReplay = false;
        }
    }

    /// <summary>True when a running rebuild replays every one of <paramref name="messages"/> (none is new to the device).</summary>
    private static bool ReplaysOnly(List<ConsumeResult<byte[]?, byte[]?>> messages, DeviceState state) =>
        state.Rebuild is { Completed: false } rebuild && messages.TrueForAll(m => rebuild.Replays(m.Partition.Value, m.Offset.Value));

    /// <summary>Applies <paramref name="messages"/> into the held replay (starting it), nothing flushed or recorded yet.</summary>
    private void Hold(HeldReplay held, List<ConsumeResult<byte[]?, byte[]?>> messages, DeviceState state)
    {
        if (held.Batch is null)
        {
            held.ExpectedVersion = state.StreamVersion;
            held.Since = Stopwatch.GetTimestamp();
        }
        // Checked before this batch is applied: the last batch held may reach past the replay (Due records it then).
        held.PastReplay |= !ReplaysOnly(messages, state);
        held.Batch = Apply(messages, state, held.Batch);
        held.Messages.AddRange(messages);
        foreach (var m in messages) held.Bytes += m.Message.Value?.Length ?? 0;
    }

    private async Task RecordHeldAsync(HeldReplay held, DeviceState state, IProducer<byte[]?, byte[]?> deadLetters, string topic, CancellationToken ct)
    {
        var spans = telemetry.StartBatch(held.Messages, topic);
        try
        {
            using (spans.StartPhase(telemetry.Source, "apply"))
                Flush();
            await RecordAsync(held.Messages, held.Batch!, held.ExpectedVersion, state, deadLetters, topic, spans, ct);
            spans.End();
        }
        catch (Exception ex)
        {
            spans.End(ex);
            throw;
        }
        held.Clear();
    }

    private async Task ApplyAndRecordAsync(
        List<ConsumeResult<byte[]?, byte[]?>> messages, DeviceState state, IProducer<byte[]?, byte[]?> deadLetters, string topic, CancellationToken ct)
    {
        var spans = telemetry.StartBatch(messages, topic);
        try
        {
            var expectedVersion = state.StreamVersion;
            AppliedBatch batch;
            using (spans.StartPhase(telemetry.Source, "apply"))
            {
                batch = Apply(messages, state, into: null);
                Flush();
            }
            await RecordAsync(messages, batch, expectedVersion, state, deadLetters, topic, spans, ct);
            spans.End();
        }
        catch (Exception ex)
        {
            spans.End(ex);
            throw;
        }
    }

    // Transaction-specific I/O errors were refused inside Apply; what is left is the device's.
    private AppliedBatch Apply(List<ConsumeResult<byte[]?, byte[]?>> messages, DeviceState state, AppliedBatch? into) =>
        OnDevice(() => _applier.Apply(messages, state, into));

    /// <summary>Makes what was applied durable: before the batch that applied it is recorded, always.</summary>
    private void Flush() => OnDevice(() => files.FlushWritten());

    /// <summary>Work on the device's files: an I/O error there is the device's fault, described with its directory.</summary>
    private T OnDevice<T>(Func<T> work)
    {
        try
        {
            return work();
        }
        catch (IOException ex)
        {
            throw new DeviceFaultException(StoreErrors.Describe(ex, files.DirectoryPath), ex);
        }
    }

    private void OnDevice(Action work) => OnDevice(() =>
    {
        work();
        return true;
    });

    /// <summary>Records an applied and flushed batch: refusals quarantined, then one PostgreSQL transaction, then the acknowledgements.</summary>
    private async Task RecordAsync(
        List<ConsumeResult<byte[]?, byte[]?>> messages, AppliedBatch batch, long expectedVersion, DeviceState state,
        IProducer<byte[]?, byte[]?> deadLetters, string topic, BatchSpans spans, CancellationToken ct)
    {
        foreach (var (m, reason, _) in batch.Refused)
            spans.Refused(messages.IndexOf(m), reason);
        if (batch.Refused.Count > 0)
            await QuarantineAsync(deadLetters, batch, state, topic, ct);
        var rebuild = RebuildProgressed(state, batch);
        using (var record = spans.StartPhase(telemetry.Source, "record"))
        {
            record?.SetTag("tm.events", batch.Events.Count);
            await _repository.CommitBatchAsync(expectedVersion, batch.Events, batch.DeletedObjects, batch.ChangedObjects.Values, batch.NextOffsets, batch.OwnerEpochs, ct, rebuild, batch.BlockWrites, batch.WritersDeleted);
        }
        _recorded = true;
        if (rebuild?.Completed == true) LogRebuildDone(rebuild);
        status.Record(state, batch);
        telemetry.CountBatch(batch.Acknowledgements.Count, batch.DataBytes, batch.Refused.Count);
        if (batch.Acknowledgements.Count > 0)
        {
            await PublishSafelyAsync(new DeviceApplied(
                _agent.DeviceId,
                [.. batch.Acknowledgements],
                [.. batch.NextOffsets.Select(kv => new PartitionOffset(kv.Key, kv.Value))]), ct);
        }
        foreach (var (m, reason, tag) in batch.Refused)
            await PublishSafelyAsync(new TransactionDeadLettered(_agent.DeviceId, m.Partition.Value, m.Offset.Value, reason, tag), ct);
    }

    /// <summary>
    /// Refused transactions go to the dead-letter topic before the batch is recorded, and every refusal is an
    /// event of the batch, so none is lost to a crash. The dead-letter topic gets a bounded time
    /// (<see cref="AgentOptions.DeadLetterTimeout"/>, all of the batch's refusals at once): when it cannot be
    /// reached the event keeps the transaction's bytes instead, and the device goes on; blocking here would
    /// stop every mirror write behind one bad transaction.
    /// </summary>
    private async Task QuarantineAsync(IProducer<byte[]?, byte[]?> producer, AppliedBatch batch, DeviceState state, string topic, CancellationToken ct)
    {
        var dlq = Topics.DeadLetter(_agent.DeviceId);
        var sends = new List<Task<bool>>(batch.Refused.Count);
        foreach (var (m, reason, _) in batch.Refused)
        {
            logger.LogWarning("Device {Device}: refused {Topic}/{Partition}@{Offset}: {Reason}", _agent.DeviceId, topic, m.Partition.Value, m.Offset.Value, reason);
            var headers = new Confluent.Kafka.Headers();
            if (m.Message.Headers is not null)
                foreach (var h in m.Message.Headers) headers.Add(h.Key, h.GetValueBytes());
            headers.Add(HeaderNames.DeadLetterReason, Encoding.UTF8.GetBytes(reason));
            headers.Add(HeaderNames.DeadLetterSource, Encoding.UTF8.GetBytes($"{topic}/{m.Partition.Value}@{m.Offset.Value}"));
            sends.Add(TryDeadLetterAsync(producer, dlq, new Message<byte[]?, byte[]?> { Key = m.Message.Key, Value = m.Message.Value, Headers = headers }, ct));
        }
        for (var i = 0; i < sends.Count; i++)
        {
            var (m, reason, tag) = batch.Refused[i];
            var delivered = await sends[i];
            if (!delivered)
                logger.LogError("Device {Device}: {Topic} is unreachable; refusal of {Partition}@{Offset} kept in PostgreSQL with the transaction", _agent.DeviceId, dlq, m.Partition.Value, m.Offset.Value);
            var value = m.Message.Value;
            TransactionApplier.RecordQuarantined(state, batch, delivered
                ? new TransactionQuarantined(m.Partition.Value, m.Offset.Value, reason, tag, DeadLettered: true)
                : new TransactionQuarantined(m.Partition.Value, m.Offset.Value, reason, tag, DeadLettered: false,
                    HeaderBytes(m, HeaderNames.Header), HeaderBytes(m, HeaderNames.Object),
                    value is { Length: <= MaxQuarantinedValueBytes } ? value : null));
        }
    }

    // A refused value larger than any write the controller accepts is kept as its reason alone.
    private const int MaxQuarantinedValueBytes = 1024 * 1024;

    private async Task<bool> TryDeadLetterAsync(IProducer<byte[]?, byte[]?> producer, string dlq, Message<byte[]?, byte[]?> message, CancellationToken ct)
    {
        try
        {
            await producer.ProduceAsync(dlq, message, ct);
            return true;
        }
        catch (KafkaException ex)
        {
            logger.LogWarning("Device {Device}: dead-letter to {Topic} failed: {Reason}", _agent.DeviceId, dlq, ex.Error.Reason);
            return false;
        }
    }

    private static byte[]? HeaderBytes(ConsumeResult<byte[]?, byte[]?> m, string key) =>
        m.Message.Headers is not null && m.Message.Headers.TryGetLastBytes(key, out var bytes) ? bytes : null;

    /// <summary>
    /// Tells the controller, again, of every truncation whose full copy is not done (objects still marked).
    /// The notice must survive a bus outage and a restart: what is durable is the <c>log_truncated</c> event and
    /// the mark, and this repeats the notice from them every <see cref="AgentOptions.ReacknowledgeAfter"/> until
    /// the controller records a full copy covering it (then this clears the mark). The controller ignores a
    /// mirror it already copies.
    /// </summary>
    private async Task SendTruncationNoticesAsync(DeviceState state, CancellationToken ct)
    {
        var notices = await _repository.PendingTruncationNoticesAsync(state, ct);
        if (notices.Count > 0) status.TruncationDetected = true;
        foreach (var (t, objects) in notices)
            await PublishSafelyAsync(new DeviceLogTruncated(_agent.DeviceId, t.Partition, t.ExpectedOffset, t.LogStartOffset, objects), ct);
    }

    private void Collect(IConsumer<byte[]?, byte[]?> consumer, List<ConsumeResult<byte[]?, byte[]?>> batch, CancellationToken ct)
    {
        var first = consumer.Consume(TimeSpan.FromMilliseconds(100));
        if (first is null) return;
        batch.Add(first);
        long bytes = first.Message.Value?.Length ?? 0;
        while (batch.Count < _agent.BatchMaxMessages && bytes < _agent.BatchMaxBytes && !ct.IsCancellationRequested)
        {
            var next = consumer.Consume(TimeSpan.Zero);
            if (next is null) break;
            batch.Add(next);
            bytes += next.Message.Value?.Length ?? 0;
        }
    }

    private static bool IsOffsetOutOfRange(ErrorCode code) =>
        code is ErrorCode.Local_AutoOffsetReset or ErrorCode.OffsetOutOfRange;

    /// <summary>
    /// The next offset this device needs is no longer in the log (or the log is behind it). Nothing may be
    /// skipped silently: record it and mark every object as needing a full copy (one transaction), then tell the
    /// controller (again and again until it is handled), and only then continue from the oldest offset the log
    /// still has.
    /// </summary>
    private async Task HandleTruncationAsync(
        IConsumer<byte[]?, byte[]?> consumer, string topic, IReadOnlyList<int> partitions, DeviceState state, CancellationToken ct)
    {
        var events = new List<object>();
        var offsets = new Dictionary<int, long>();
        foreach (var p in partitions)
        {
            var wm = consumer.QueryWatermarkOffsets(new TopicPartition(topic, p), TimeSpan.FromSeconds(10));
            var expected = state.NextOffsets.GetValueOrDefault(p, 0);
            if (expected >= wm.Low.Value && expected <= wm.High.Value) continue;
            events.Add(new LogTruncated(p, expected, wm.Low.Value));
            offsets[p] = wm.Low.Value;
            logger.LogError("Device {Device}: offset {Expected} of {Topic}/{Partition} is no longer in the log (it holds {Low}..{High}); every object is marked as needing a full copy",
                _agent.DeviceId, expected, topic, p, wm.Low.Value, wm.High.Value);
        }
        if (events.Count == 0)
            throw new InvalidOperationException("Kafka reported an offset out of range, but every stored offset is inside the log.");
        foreach (var o in state.Objects.Values) o.NeedsFullCopy = true;
        await _repository.CommitBatchAsync(state.StreamVersion, events, [], state.Objects.Values, offsets, new Dictionary<(string, int), long>(), ct);
        status.TruncationDetected = true;
        // Only now, from what is recorded: a notice sent before the commit could announce a truncation a crash
        // then forgets, and one lost on the bus is sent again from the same record.
        await SendTruncationNoticesAsync(state, ct);
    }

    /// <summary>
    /// Takes a rebuild request between two batches: the log's start and the device's next offsets (where the replay
    /// will end) per partition, recorded with the rebuild (<see cref="DeviceRepository.BeginRebuildAsync"/>, which changes
    /// <paramref name="state"/> as it recorded it). The log's start when a rebuild began (the caller consumes again from
    /// there); null when none did.
    /// </summary>
    private async Task<Dictionary<int, long>?> BeginRebuildAsync(
        IConsumer<byte[]?, byte[]?> consumer, string topic, IReadOnlyList<int> partitions, DeviceState state, RebuildRequests.Request request, CancellationToken ct)
    {
        if (state.Rebuild is { } current && (current.Id == request.Id || !current.Completed))
        {
            request.Answer.TrySetResult(current.Id == request.Id
                ? new RebuildAnswer(current.Progress(state.NextOffsets), null)
                : new RebuildAnswer(null, $"rebuild {current.Id} of {_agent.DeviceId} is still replaying"));
            return null;
        }
        try
        {
            var logStart = new Dictionary<int, long>();
            var until = new Dictionary<int, long>();
            foreach (var p in partitions)
            {
                var wm = consumer.QueryWatermarkOffsets(new TopicPartition(topic, p), TimeSpan.FromSeconds(10));
                logStart[p] = wm.Low.Value;
                until[p] = state.NextOffsets.GetValueOrDefault(p, 0);
            }
            var rebuild = new RebuildState(request.Id, logStart, until, DateTimeOffset.UtcNow);
            // The same consumer, from the log's start, before the rebuild is recorded: its first fetches run while the
            // begin commits and the files are deleted. Nothing is consumed until both are done; a failed begin leaves
            // this loop, and with it this assignment, for a reload.
            consumer.Assign(partitions.Select(p => new TopicPartitionOffset(topic, p, logStart[p])));
            await _repository.BeginRebuildAsync(state, rebuild, ct);
            logger.LogWarning("Device {Device}: rebuild {Id} begins: every object file is deleted and {Topic} replayed from {From} up to {Until}{Truncated}",
                _agent.DeviceId, rebuild.Id, topic, Offsets(logStart), Offsets(until),
                rebuild.LogTruncated ? "; the log no longer holds its start, so every object is marked for a full copy" : "");
            request.Answer.TrySetResult(new RebuildAnswer(rebuild.Progress(logStart), null));
            return logStart;
        }
        catch (Exception ex)
        {
            request.Answer.TrySetResult(new RebuildAnswer(null, $"the rebuild could not begin: {ex.Message}"));
            throw;
        }
    }

    /// <summary>
    /// After a (re)load: a rebuild whose object files may still exist deletes them (again, after a crash before the
    /// first replayed batch recorded the deletion); one with nothing left to replay is recorded as done at once.
    /// </summary>
    private async Task ContinueRebuildAsync(DeviceState state, CancellationToken ct)
    {
        if (state.Rebuild is not { Completed: false } rebuild) return;
        var reachedEnd = rebuild.ReachedEnd(state.NextOffsets);
        OnDevice(() =>
        {
            if (!rebuild.Wiped)
            {
                var deleted = files.DeleteAll();
                logger.LogWarning("Device {Device}: rebuild {Id} deleted {Files} object and checksum files", _agent.DeviceId, rebuild.Id, deleted);
                rebuild.Wiped = true; // recorded with the first replayed batch (DeviceRepository.CommitBatchAsync)
            }
            // With nothing to replay, the deletion is made durable here, before the rebuild's end records it.
            if (reachedEnd) files.FlushWritten();
        });
        if (reachedEnd)
        {
            rebuild.CompletedAt = DateTimeOffset.UtcNow;
            await _repository.CommitBatchAsync(state.StreamVersion, [], [], [], new Dictionary<int, long>(), new Dictionary<(string, int), long>(), ct, rebuild);
            LogRebuildDone(rebuild);
        }
    }

    /// <summary>Counts a batch into the running rebuild and marks it done once the replay reached its end.</summary>
    private static RebuildState? RebuildProgressed(DeviceState state, AppliedBatch batch)
    {
        if (state.Rebuild is not { Completed: false } rebuild) return null;
        rebuild.Transactions += batch.Replayed;
        rebuild.Bytes += batch.ReplayedBytes;
        rebuild.Refused += batch.ReplayRefused;
        rebuild.Batches++;
        rebuild.FirstBatchAt ??= DateTimeOffset.UtcNow;
        if (rebuild.ReachedEnd(state.NextOffsets)) rebuild.CompletedAt = DateTimeOffset.UtcNow;
        return rebuild;
    }

    private void LogRebuildDone(RebuildState rebuild) =>
        logger.LogWarning("Device {Device}: rebuild {Id} replayed {Transactions} transactions ({Bytes} bytes, {Refused} refused as the first time) up to {Until} in {Seconds:0.000} s ({Batches} batches, the first done {First:0.000} s after the rebuild began)",
            _agent.DeviceId, rebuild.Id, rebuild.Transactions, rebuild.Bytes, rebuild.Refused, Offsets(rebuild.ReplayUntil),
            ((rebuild.CompletedAt ?? DateTimeOffset.UtcNow) - rebuild.StartedAt).TotalSeconds, rebuild.Batches,
            ((rebuild.FirstBatchAt ?? DateTimeOffset.UtcNow) - rebuild.StartedAt).TotalSeconds);

    private static string Offsets(Dictionary<int, long> offsets) => string.Join(",", offsets.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}@{kv.Value}"));

    private List<int> DiscoverPartitions(string bootstrap, string topic)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrap }).Build();
        for (var attempt = 0; ; attempt++)
        {
            var md = admin.GetMetadata(topic, TimeSpan.FromSeconds(10));
            var t = md.Topics.FirstOrDefault(x => x.Topic == topic);
            if (t is { Error.IsError: false, Partitions.Count: > 0 })
                return [.. t.Partitions.Select(p => p.PartitionId).Order()];
            if (attempt > 50)
                throw new InvalidOperationException($"Topic {topic} has no partitions: {t?.Error.Reason ?? "not found"}");
            Thread.Sleep(200);
        }
    }

    /// <summary>Acknowledges live entries again; the controller ignores tags it has already settled.</summary>
    private async Task AcknowledgeLiveAsync(DeviceState state, TimeSpan olderThan, CancellationToken ct)
    {
        var cutoff = DateTimeOffset.UtcNow - olderThan;
        var entries = state.Live
            .Where(kv => kv.Value.LastAcknowledged <= cutoff)
            .Take(10_000)
            .Select(kv =>
            {
                kv.Value.LastAcknowledged = DateTimeOffset.UtcNow;
                return new AppliedEntry(kv.Value.Tag.ToString(), kv.Value.ObjectId, kv.Value.FirstBlock, kv.Value.BlockCount, kv.Key);
            })
            .ToArray();
        if (entries.Length == 0) return;
        await PublishSafelyAsync(new DeviceApplied(_agent.DeviceId, entries, [.. state.NextOffsets.Select(kv => new PartitionOffset(kv.Key, kv.Value))]), ct);
    }

    /// <summary>
    /// An acknowledgement that cannot be published is not fatal: the entry stays in the tag table and is
    /// acknowledged again later; the data is already durable.
    /// </summary>
    private async Task PublishSafelyAsync<T>(T message, CancellationToken ct) where T : class
    {
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(TimeSpan.FromSeconds(5));
            await bus.Publish(message, cts.Token);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            logger.LogWarning(ex, "Device {Device}: could not publish {Message}; it will be sent again", _agent.DeviceId, typeof(T).Name);
        }
    }
}
