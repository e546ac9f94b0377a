using System.Diagnostics;
using System.Text;
using System.Threading.Channels;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Intake;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting.Kafka;

namespace TaggedMirror.Controller.Intake;

/// <summary>
/// Reads the requests topic: every partition, assigned (no consumer group, no Kafka offsets), from the lowest position
/// of the volumes this controller owns, and hands each message to its volume's <see cref="VolumeIntake"/> when this
/// controller owns the volume. Requests for no known volume, and unreadable ones, are answered by whichever controller
/// first quarantines them. When this controller gains a volume (start, takeover, creation) it goes back to that
/// volume's recorded position, so nothing a previous owner left unanswered is skipped. Design: docs/design.md,
/// "Producers that publish writes".
/// </summary>
internal sealed class IntakeService(
    ControllerOptions options, DeviceLog log, VolumeCatalog catalog, IntakeStore store, IntakeAccess access, RequestHandler handler, OutcomePublisher outcomes,
    IntakeTelemetry telemetry, ILogger<IntakeService> logger)
    : BackgroundService
{
    private static readonly TimeSpan ScanInterval = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan AdvanceInterval = TimeSpan.FromSeconds(2);

    private readonly Dictionary<string, VolumeIntake> _volumes = new(StringComparer.Ordinal);
    private readonly Dictionary<int, long> _next = [];
    private Channel<IntakeMessage> _unowned = NewUnowned();
    private IConsumer<byte[]?, byte[]?> _consumer = null!;
    private int[] _partitions = [];

    private IntakeOptions Intake => options.Intake;

    private static Channel<IntakeMessage> NewUnowned() =>
        Channel.CreateBounded<IntakeMessage>(new BoundedChannelOptions(10_000) { SingleReader = true, SingleWriter = true });

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Intake.Enabled ? Task.Run(() => RunAsync(stoppingToken), CancellationToken.None) : Task.CompletedTask;

    private async Task RunAsync(CancellationToken ct)
    {
        // A failure here must not stop the controller (a faulted background service stops the host): start again.
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await RunOnceAsync(ct);
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                logger.LogError(ex, "Intake: stopped by an error; starting again");
                await Task.Delay(Intake.RetryInterval, CancellationToken.None);
            }
        }
    }

    private async Task RunOnceAsync(CancellationToken ct)
    {
        _volumes.Clear();
        _next.Clear();
        _unowned = NewUnowned();
        try
        {
            _partitions = await PartitionsAsync(ct);
            var config = KafkaSettings.DeviceConsumer(log.Bootstrap, $"intake-controller-{options.Id}");
            config.MaxPartitionFetchBytes = KafkaSettings.BrokerMessageMaxBytes;
            // Partitions are assigned, never subscribed: the group id only satisfies the client; nothing is committed.
            config.ClientId = config.GroupId = $"tm-controller-{options.Id}-intake";
            using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(config).Build();
            _consumer = consumer;
            // Every partition from its end; each volume this controller owns then takes its partitions back to its position.
            foreach (var p in _partitions) _next[p] = Watermarks(p).High.Value;
            consumer.Assign(_partitions.Select(p => new TopicPartitionOffset(Intake.RequestsTopic, p, _next[p])));
            var unowned = AnswerUnownedAsync(ct);
            logger.LogInformation("Intake: reading {Topic} ({Partitions} partitions), answering on {Outcomes}", Intake.RequestsTopic, _partitions.Length, Intake.OutcomesTopic);
            try
            {
                await PollAsync(consumer, ct);
            }
            finally
            {
                foreach (var w in _volumes.Values) w.Stop();
                _unowned.Writer.TryComplete();
                await unowned;
                consumer.Close();
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private async Task PollAsync(IConsumer<byte[]?, byte[]?> consumer, CancellationToken ct)
    {
        long lastScan = 0, lastAdvance = Stopwatch.GetTimestamp();
        while (!ct.IsCancellationRequested)
        {
            if (Stopwatch.GetElapsedTime(lastScan) > ScanInterval)
            {
                await ScanAsync(ct);
                lastScan = Stopwatch.GetTimestamp();
            }
            ReadOverflowedAgain();
            if (Stopwatch.GetElapsedTime(lastAdvance) > AdvanceInterval)
            {
                OfferAdvances();
                lastAdvance = Stopwatch.GetTimestamp();
            }
            ConsumeResult<byte[]?, byte[]?>? r;
            try
            {
                r = consumer.Consume(TimeSpan.FromMilliseconds(100));
            }
            catch (ConsumeException ex) when (ex.Error.Code is ErrorCode.Local_AutoOffsetReset or ErrorCode.OffsetOutOfRange && ex.ConsumerRecord is { } at)
            {
                // Retention took requests no controller had answered: say so loudly, and go on from what the log still holds.
                var p = at.Partition.Value;
                var start = Watermarks(p).Low.Value;
                logger.LogError("Intake: partition {Partition} of {Topic} no longer holds offset {Offset} (it starts at {Start}); requests in between were never answered",
                    p, Intake.RequestsTopic, _next.GetValueOrDefault(p), start);
                SeekTo(p, start);
                continue;
            }
            catch (ConsumeException ex)
            {
                logger.LogWarning("Intake: consuming {Topic} failed: {Reason}", Intake.RequestsTopic, ex.Error.Reason);
                await Task.Delay(200, ct);
                continue;
            }
            if (r?.Message is null) continue;
            await RouteAsync(r, ct);
        }
    }

    private async Task RouteAsync(ConsumeResult<byte[]?, byte[]?> r, CancellationToken ct)
    {
        int p = r.Partition.Value;
        var o = r.Offset.Value;
        _next[p] = o + 1;
        var envelope = r.Message.Headers is { } h && h.TryGetLastBytes(IntakeHeaders.Request, out var e) ? e : null;
        var m = new IntakeMessage(p, o, r.Message.Key, envelope, r.Message.Value, r.Message.Headers);
        var name = VolumeName(r.Message.Key);
        if (name is not null)
        {
            if (!_volumes.TryGetValue(name, out var w) && catalog.Find(name) is { Owned: true } v)
            {
                // Owned, but its intake is not running yet (created here a moment ago): start it now, not at the next scan.
                try
                {
                    await GainAsync(v, ct);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    logger.LogWarning("Intake: volume {Volume}: its position could not be read ({Reason}); trying again", name, ex.Message);
                    SeekTo(p, o);
                    await Task.Delay(Intake.RetryInterval, ct);
                    return;
                }
                if (_next[p] <= o) return; // went back: this message comes again
                w = _volumes[name];
            }
            if (w is not null)
            {
                Offer(w, m);
                return;
            }
            if (catalog.Find(name) is not null) return; // another controller's volume
        }
        await _unowned.Writer.WriteAsync(m, ct);
    }

    private void Offer(VolumeIntake w, IntakeMessage m)
    {
        if (m.Offset < w.Dispatched.GetValueOrDefault(m.Partition) || w.Overflowed.Contains(m.Partition)) return;
        if (!w.Offer(m))
        {
            // Read ahead as far as allowed: this volume's later messages are read again once it has worked through these.
            w.Overflowed.Add(m.Partition);
            return;
        }
        w.Dispatched[m.Partition] = m.Offset + 1;
    }

    /// <summary>Stops the intakes of volumes this controller lost, and starts those of volumes it gained.</summary>
    private async Task ScanAsync(CancellationToken ct)
    {
        foreach (var (name, w) in _volumes.ToList())
        {
            if (w.Stopped || catalog.Find(name) is not { Owned: true })
            {
                w.Stop();
                _volumes.Remove(name);
            }
        }
        foreach (var v in catalog.All)
        {
            if (!v.Owned || _volumes.ContainsKey(v.Name)) continue;
            try
            {
                await GainAsync(v, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning("Intake: volume {Volume}: its position could not be read ({Reason}); trying again", v.Name, ex.Message);
                return;
            }
        }
    }

    /// <summary>
    /// Starts a volume's intake at its recorded positions (where none is recorded, no request of it was ever answered:
    /// from the start of the log) and takes the partitions back there if this controller has read past them.
    /// </summary>
    private async Task GainAsync(Volume v, CancellationToken ct)
    {
        var recorded = await store.PositionsAsync(v.Name, ct);
        var w = new VolumeIntake(v.Name, Intake.QueueLimit);
        foreach (var p in _partitions)
        {
            var at = recorded.TryGetValue(p, out var x) ? x : Watermarks(p).Low.Value;
            w.Positions[p] = at;
            w.Dispatched[p] = at;
            if (at < _next[p]) SeekTo(p, at);
        }
        _volumes[v.Name] = w;
        _ = w.RunAsync(handler, Intake, telemetry, logger, ct);
        logger.LogInformation("Intake: volume {Volume} is this controller's; its requests from {Positions}", v.Name,
            string.Join(", ", w.Positions.Select(kv => $"{kv.Key}:{kv.Value}")));
    }

    private void ReadOverflowedAgain()
    {
        foreach (var w in _volumes.Values)
        {
            if (w.Overflowed.Count == 0 || !w.Idle) continue;
            foreach (var p in w.Overflowed)
            {
                if (w.Dispatched[p] < _next[p]) SeekTo(p, w.Dispatched[p]);
            }
            w.Overflowed.Clear();
        }
    }

    /// <summary>
    /// An idle volume's position follows the poll loop's: every message below it was this volume's and handed over, or
    /// not this volume's. Keeps what a restart or takeover reads again short for volumes with few requests.
    /// </summary>
    private void OfferAdvances()
    {
        foreach (var w in _volumes.Values)
        {
            if (w.Overflowed.Count > 0 || !w.Idle) continue;
            foreach (var p in _partitions)
            {
                var next = _next[p];
                if (next > w.Dispatched.GetValueOrDefault(p) && w.Offer(IntakeMessage.Advance(p, next))) w.Dispatched[p] = next;
            }
        }
    }

    private void SeekTo(int partition, long offset)
    {
        _next[partition] = offset;
        try
        {
            _consumer.Seek(new TopicPartitionOffset(Intake.RequestsTopic, partition, offset));
        }
        catch (KafkaException)
        {
            // Not fetched from yet (librdkafka refuses a seek then): assign every partition again at its position.
            _consumer.Assign(_partitions.Select(p => new TopicPartitionOffset(Intake.RequestsTopic, p, _next[p])));
        }
    }

    private WatermarkOffsets Watermarks(int partition) =>
        _consumer.QueryWatermarkOffsets(new TopicPartition(Intake.RequestsTopic, partition), TimeSpan.FromSeconds(10));

    private static string? VolumeName(byte[]? key)
    {
        if (key is not { Length: > 0 and <= 48 } || !System.Text.Ascii.IsValid(key)) return null;
        var name = Encoding.ASCII.GetString(key);
        return Names.IsValid(name) ? name : null;
    }

    /// <summary>
    /// Requests for no volume this controller knows, and unreadable ones. A volume that exists after all (created
    /// elsewhere, not loaded here yet) is its owner's; otherwise the first controller to quarantine the message answers.
    /// </summary>
    private async Task AnswerUnownedAsync(CancellationToken ct)
    {
        await foreach (var m in _unowned.Reader.ReadAllAsync(CancellationToken.None))
        {
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    await AnswerUnownedAsync(m, ct);
                    break;
                }
                catch (Exception ex) when (!ct.IsCancellationRequested)
                {
                    telemetry.Waits.Add(1);
                    logger.LogWarning("Intake: request at {Partition}/{Offset} (no volume here) could not be answered yet: {Reason}", m.Partition, m.Offset, ex.Message);
                    await Task.Delay(Intake.RetryInterval, CancellationToken.None);
                }
            }
        }
    }

    private async Task AnswerUnownedAsync(IntakeMessage m, CancellationToken ct)
    {
        var d = IntakeCodec.Decode(m.Key, m.Envelope, m.Value);
        var name = d.Volume is { } n && Names.IsValid(n) ? n : null;
        if (name is not null && (catalog.Find(name) is not null || await store.VolumeExistsAsync(name, ct))) return;
        var reason = d.Error ?? $"no volume named '{name}'";
        IntakeOutcome? refusal = null, unrecorded = null;
        if (d is { ProducerId: { } p, RequestId: { } q })
        {
            // As for a volume's requests (RequestHandler): no one's request is only quarantined; a key that may not
            // write the volume it named hears so, unrecorded, whether or not the volume exists.
            var (sender, stranger) = await access.IdentifyAsync(m.Headers, p, ct);
            if (stranger is not null) reason = stranger;
            else if (d.Error is null && !sender!.MayWrite(name ?? ""))
                unrecorded = IntakeOutcome.Refused(p, q, d.Volume ?? "", d.Request?.FirstBlock ?? 0, reason = $"key {sender.KeyId} may not write volume {name}");
            else refusal = IntakeOutcome.Refused(p, q, d.Volume ?? "", d.Request?.FirstBlock ?? 0, reason);
        }
        var (claimed, publish) = await store.ClaimUnownedAsync(
            new QuarantinedRequest(m.Partition, m.Offset, d.Volume, d.ProducerId, d.RequestId, reason, m.Key, m.Envelope, m.Value), refusal, ct);
        if (!claimed) return;
        telemetry.Quarantined.Add(1);
        logger.LogWarning("Intake: request at {Partition}/{Offset} refused and quarantined: {Reason}", m.Partition, m.Offset, reason);
        publish ??= unrecorded;
        if (publish is null) return;
        await outcomes.PublishAsync(publish, ct);
        (ReferenceEquals(publish, refusal) || ReferenceEquals(publish, unrecorded) ? telemetry.Refused : telemetry.Duplicates).Add(1);
    }

    /// <summary>The requests topic's partitions, creating both topics first when they are missing.</summary>
    private async Task<int[]> PartitionsAsync(CancellationToken ct)
    {
        using var admin = new DependentAdminClientBuilder(outcomes.Producer.Handle).Build();
        while (true)
        {
            try
            {
                var md = admin.GetMetadata(TimeSpan.FromSeconds(5));
                var missing = new[] { Intake.RequestsTopic, Intake.OutcomesTopic }.Where(t => !md.Topics.Any(x => x.Topic == t && !x.Error.IsError && x.Partitions.Count > 0)).ToList();
                if (missing.Count == 0)
                    return [.. md.Topics.Single(t => t.Topic == Intake.RequestsTopic).Partitions.Select(x => x.PartitionId).Order()];
                var replication = (short)Math.Clamp(md.Brokers.Count, 1, 3);
                // Bounded: a broker that does not answer CreateTopics (the development mock) would hold this for a minute.
                await admin.CreateTopicsAsync(
                    missing.Select(t => new TopicSpecification { Name = t, NumPartitions = Intake.Partitions, ReplicationFactor = replication }),
                    new CreateTopicsOptions { RequestTimeout = TimeSpan.FromSeconds(5), OperationTimeout = TimeSpan.FromSeconds(5) });
            }
            catch (CreateTopicsException ex) when (ex.Results.All(r => r.Error.Code is ErrorCode.NoError or ErrorCode.TopicAlreadyExists))
            {
            }
            catch (KafkaException ex)
            {
                logger.LogWarning("Intake: topics {Topic} and {Outcomes} not there yet, and not created: {Reason}", Intake.RequestsTopic, Intake.OutcomesTopic, ex.Message);
                // Where the broker creates topics on demand, a metadata request for them from a producer does it.
                try
                {
                    admin.GetMetadata(Intake.RequestsTopic, TimeSpan.FromSeconds(5));
                    admin.GetMetadata(Intake.OutcomesTopic, TimeSpan.FromSeconds(5));
                }
                catch (KafkaException)
                {
                }
            }
            await Task.Delay(500, ct);
        }
    }
}
