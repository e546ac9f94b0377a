using System.Diagnostics;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using TaggedMirror.Contracts.Intake;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Reconciliation;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Access;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Intake;

/// <summary>
/// Handles one step of a volume's requests, in log order: refuses and quarantines bad ones, answers a request id seen
/// before with its first outcome, writes new ones through <see cref="WritePipeline"/> (the HTTP write's path and
/// acknowledgement) with the request id riding along to the devices, and settles a request whose fate is unknown by
/// looking for it in the mirrors' tag tables. The rule that keeps a request from being written twice (design.md,
/// "Producers that publish writes"): its id is recorded pending, committed, before its write is sent; its outcome is
/// published, then recorded with the volume's position; a pending id met again is written only once no mirror holds
/// it and none can receive it any more.
/// </summary>
internal sealed class RequestHandler(
    VolumeCatalog catalog, WritePipeline pipeline, LogProgress progress, IntakeStore store, IntakeAccess access, OutcomePublisher outcomes,
    ControllerOptions options, ControllerTelemetry controllerTelemetry, IntakeTelemetry telemetry, ILogger<RequestHandler> logger)
{
    /// <summary>How a step ended: requests done from the head of the step's list; why it stopped early; the volume is not ours any more.</summary>
    public readonly record struct StepResult(int Completed, string? Wait, bool Lost);

    public async Task<StepResult> HandleAsync(VolumeIntake intake, IReadOnlyList<IntakeMessage> items, CancellationToken ct)
    {
        if (catalog.Find(intake.Name) is not { Owned: true } v) return new StepResult(0, null, Lost: true);
        var decoded = new IntakeDecoded?[items.Count];
        var ids = new HashSet<(string, string)>();
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i].AdvanceOnly) continue;
            decoded[i] = Decode(items[i], v);
            if (decoded[i] is { ProducerId: { } p, RequestId: { } q }) ids.Add((p, q));
        }
        // Whose each request is (docs/design.md, "Who may publish a write"): a request from no one is quarantined before
        // anything else is looked at, and nothing is recorded or published under the producer id it names; one whose
        // key may not write the volume is refused to its producer, unrecorded (the key may be given the volume later).
        var nobody = new string?[items.Count];
        var denied = new string?[items.Count];
        var senders = new Principal?[items.Count];
        for (var i = 0; i < items.Count; i++)
        {
            if (decoded[i] is not { ProducerId: { } p }) continue;
            var (sender, refusal) = await access.IdentifyAsync(items[i].Headers, p, ct);
            nobody[i] = refusal;
            senders[i] = sender;
            if (sender is not null && !sender.MayWrite(v.Name))
                denied[i] = $"key {sender.KeyId} may not write volume {v.Name}";
        }
        var stored = await store.LookupAsync(ids, ct);

        // Every new, well-formed request of the step is recorded pending before the first of them is written.
        var fresh = new List<(string, string, string, int, long)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < items.Count; i++)
        {
            if (decoded[i] is { Error: null, ProducerId: { } p, RequestId: { } q } && nobody[i] is null && denied[i] is null
                && !stored.ContainsKey(IntakeCodec.RequestKey(p, q)) && seen.Add(IntakeCodec.RequestKey(p, q)))
            {
                fresh.Add((p, q, v.Name, items[i].Partition, items[i].Offset));
            }
        }
        var mine = await store.InsertPendingAsync(fresh, ct);
        if (mine.Count < fresh.Count)
        {
            // Recorded meanwhile by someone else (the same id published for another volume, or an unknown one).
            foreach (var (key, row) in await store.LookupAsync([.. fresh.Where(f => !mine.Contains(IntakeCodec.RequestKey(f.Item1, f.Item2))).Select(f => (f.Item1, f.Item2))], ct))
                stored[key] = row;
        }

        var answered = new List<(IntakeOutcome, int, long)>();
        var quarantined = new List<QuarantinedRequest>();
        var inStep = new Dictionary<string, IntakeOutcome>(StringComparer.Ordinal);
        var publishes = new List<Task>();
        var positions = new Dictionary<int, long>();
        var counted = new List<Counter>();
        var completed = 0;
        string? wait = null;
        for (var i = 0; i < items.Count; i++)
        {
            var m = items[i];
            if (m.AdvanceOnly || m.Offset < intake.Positions.GetValueOrDefault(m.Partition))
            {
                // An advance, or a message answered before and read again after the poll loop went back for another volume.
                if (m.AdvanceOnly) positions[m.Partition] = Math.Max(positions.GetValueOrDefault(m.Partition), m.Offset);
                completed++;
                continue;
            }
            var d = decoded[i]!;
            var key = d is { ProducerId: { } producer, RequestId: { } request } ? IntakeCodec.RequestKey(producer, request) : null;
            using var span = StartSpan(m, d, v.Name);
            IntakeOutcome? outcome;
            var record = false;
            var publish = true;
            var first = false; // the outcome is the request id's own (recorded now or before), not a refusal of this copy only
            try
            {
                if (nobody[i] is { } stranger)
                {
                    quarantined.Add(new QuarantinedRequest(m.Partition, m.Offset, v.Name, d.ProducerId, d.RequestId, stranger, m.Key, m.Envelope, m.Value));
                    counted.Add(Counter.Quarantined);
                    logger.LogWarning("Intake: request at {Partition}/{Offset} for volume {Volume} quarantined, unanswered: {Reason}", m.Partition, m.Offset, v.Name, stranger);
                    outcome = null;
                }
                else if (denied[i] is { } forbidden)
                {
                    // The producer's own request (its key holds the id), so it hears why; not recorded, so the same
                    // request id is written once the key may write the volume.
                    outcome = IntakeOutcome.Refused(d.ProducerId!, d.RequestId ?? "", v.Name, d.Request?.FirstBlock ?? 0, forbidden);
                    publish = d.RequestId is not null;
                    counted.Add(Counter.Refused);
                    logger.LogWarning("Intake: request at {Partition}/{Offset} refused: {Reason}", m.Partition, m.Offset, forbidden);
                }
                else if (key is not null && inStep.TryGetValue(key, out var earlier))
                {
                    outcome = earlier;
                    first = true;
                    counted.Add(Counter.Duplicate);
                }
                else if (key is not null && stored.TryGetValue(key, out var row) && row.Answered)
                {
                    outcome = row.Outcome!;
                    first = true;
                    // The very message that was answered, read again (the volume's position was not yet past it): it was published then.
                    publish = !row.IsFirstMessage(m.Partition, m.Offset);
                    if (publish) counted.Add(Counter.Duplicate);
                }
                else if ((d.Error ?? IntakeCodec.CheckAgainstVolume(v.Name, d.Request!.FirstBlock, d.Data!.Length, v.BlockSize, v.Blocks, options.MaxWriteBytes)) is { } error)
                {
                    quarantined.Add(new QuarantinedRequest(m.Partition, m.Offset, v.Name, d.ProducerId, d.RequestId, error, m.Key, m.Envelope, m.Value));
                    counted.Add(Counter.Quarantined);
                    logger.LogWarning("Intake: request at {Partition}/{Offset} for volume {Volume} refused and quarantined: {Reason}", m.Partition, m.Offset, v.Name, error);
                    outcome = key is null ? null : IntakeOutcome.Refused(d.ProducerId!, d.RequestId!, v.Name, d.Request?.FirstBlock ?? 0, error);
                    // An id already pending (its write under way elsewhere) keeps its own outcome; this copy gets the refusal.
                    record = key is not null && !stored.ContainsKey(key);
                    if (outcome is not null) counted.Add(Counter.Refused);
                }
                else if (stored.TryGetValue(key!, out var other) && other.Volume != v.Name)
                {
                    outcome = IntakeOutcome.Refused(d.ProducerId!, d.RequestId!, v.Name, d.Request!.FirstBlock,
                        $"request id {d.RequestId} of producer {d.ProducerId} was first used for volume {other.Volume}: a request id names one write");
                    counted.Add(Counter.Refused);
                }
                else
                {
                    // Pending from before this step: a restart, a takeover or a failed attempt came between its write and its outcome.
                    outcome = stored.ContainsKey(key!) && !mine.Contains(key!) ? await RecoverAsync(intake, v, key!, d, ct) : null;
                    if (outcome is not null) counted.Add(outcome.Ok ? Counter.Accepted : Counter.Refused);
                    outcome ??= await WriteAsync(intake, v, key!, d, senders[i]!, counted, ct);
                    record = true;
                }
            }
            catch (IntakeWaitException ex)
            {
                span?.SetStatus(ActivityStatusCode.Error, ex.Message);
                wait = ex.Message;
                break;
            }
            if (outcome is not null)
            {
                if (record) answered.Add((outcome, m.Partition, m.Offset));
                if (key is not null && (record || first)) inStep[key] = outcome;
                if (publish) publishes.Add(outcomes.PublishAsync(outcome, ct));
                if (span is { IsAllDataRequested: true })
                {
                    span.SetTag("tm.intake.ok", outcome.Ok);
                    if (outcome.Tag is not null) span.SetTag(TelemetryAttributes.Tag, outcome.Tag);
                    if (outcome.Refusal is not null) span.SetStatus(ActivityStatusCode.Error, outcome.Refusal);
                }
            }
            positions[m.Partition] = m.Offset + 1;
            completed++;
        }

        // Published before recorded: a crash in between leaves the request pending, and the outcome found for it then is the same.
        try
        {
            await Task.WhenAll(publishes);
            await store.CommitAsync(v.Name, answered, quarantined, positions, ct);
        }
        catch (Exception ex) when (ex is KafkaException || TransientErrors.IsTransient(ex))
        {
            intake.CaughtUpOwnerEpoch = 0;
            return new StepResult(0, $"outcomes could not be published and recorded: {ex.Message}", Lost: false);
        }
        foreach (var (partition, next) in positions)
            intake.Positions[partition] = Math.Max(intake.Positions.GetValueOrDefault(partition), next);
        var volume = new KeyValuePair<string, object?>(TelemetryAttributes.Volume, v.Name);
        foreach (var c in counted)
        {
            (c switch
            {
                Counter.Accepted => telemetry.Accepted,
                Counter.Refused => telemetry.Refused,
                Counter.Duplicate => telemetry.Duplicates,
                _ => telemetry.Quarantined,
            }).Add(1, volume);
        }
        return new StepResult(completed, wait, Lost: false);
    }

    private enum Counter
    {
        Accepted,
        Refused,
        Duplicate,
        Quarantined,
    }

    private static IntakeDecoded Decode(IntakeMessage m, Volume v)
    {
        var d = IntakeCodec.Decode(m.Key, m.Envelope, m.Value);
        // Routed by its key, so the volume is this one; only a malformed key (then refused) differs.
        return d.Volume == v.Name || d.Error is not null ? d : d with { Error = $"the message key '{d.Volume}' is not volume {v.Name}" };
    }

    private async Task<IntakeOutcome> WriteAsync(VolumeIntake intake, Volume v, string key, IntakeDecoded d, Principal sender, List<Counter> counted, CancellationToken ct)
    {
        var r = d.Request!;
        try
        {
            var result = await pipeline.WriteAsync(v, TransactionKind.Write, r.FirstBlock, d.Data!, waitApplied: false, WriteOrigin.Intake(sender.KeyId, key), ct);
            counted.Add(Counter.Accepted);
            return new IntakeOutcome(r.ProducerId, r.RequestId, v.Name, true, result.Tag, result.FirstBlock, result.Blocks, result.MirrorsHolding, result.Mirrors, null);
        }
        catch (VolumeChangedException)
        {
            // Deleted while the write waited at its fence: nothing was sent.
            counted.Add(Counter.Refused);
            return IntakeOutcome.Refused(r.ProducerId, r.RequestId, v.Name, r.FirstBlock, $"volume {v.Name} was deleted");
        }
        catch (Exception ex) when (ex is WriteFailedException or VolumeTakenOverException or Polly.Timeout.TimeoutRejectedException || TransientErrors.IsTransient(ex))
        {
            // Like an HTTP write answered 503: some copies may be in the logs. The request stays pending and is looked for
            // in the mirrors' tag tables before anything else of the volume is done; those copies must be applied first.
            intake.CaughtUpOwnerEpoch = 0;
            throw new IntakeWaitException($"request {key}: {ex.Message} (its fate is unknown: it is looked for in the mirrors before the volume's intake goes on)");
        }
    }

    /// <summary>
    /// A request recorded pending whose outcome never was: find its write in the mirrors' tag tables, or show that no
    /// copy of it can appear any more (then null: it is written now). Every mirror's log must first be applied up to an
    /// end read after this owner's fence was in it: a copy sent by an earlier owner (dead, or stalled and fenced) is then
    /// either recorded or refused as fenced, and one this process sent in a failed attempt was delivered or failed
    /// before the attempt returned.
    /// </summary>
    private async Task<IntakeOutcome?> RecoverAsync(VolumeIntake intake, Volume v, string key, IntakeDecoded d, CancellationToken ct)
    {
        if (intake.CaughtUpOwnerEpoch != v.OwnerEpoch)
        {
            foreach (var m in v.Mirrors)
            {
                if (m.FencedOwnerEpoch < v.OwnerEpoch)
                    throw new IntakeWaitException($"request {key} has no recorded outcome, and the owner fence {v.OwnerEpoch} is not yet in the log of {m.DeviceId}");
            }
            foreach (var m in v.Mirrors)
            {
                try
                {
                    // Whether a copy can still appear, not whether the mirror holds the data: one its truncated log
                    // lost never appears there, and the mirrors that recorded it answer (so no truncation check).
                    await progress.WaitCaughtUpAsync(m.DeviceId, objectId: null, options.Intake.RecoveryWait, ct);
                }
                catch (Exception ex) when (ex is TimeoutException or KafkaException)
                {
                    throw new IntakeWaitException($"request {key} has no recorded outcome, and the mirror on {m.DeviceId} could not be shown to have applied its log: {ex.Message}");
                }
            }
            intake.CaughtUpOwnerEpoch = v.OwnerEpoch;
        }
        var copies = await store.RecordedAsync(key, v.Mirrors.Select(m => (m.DeviceId, m.ObjectId)), ct);
        if (copies.Count == 0)
        {
            logger.LogInformation("Intake: request {Key} of volume {Volume} had no outcome and no mirror holds it: written now", key, v.Name);
            return null;
        }
        var tag = copies[0].Tag;
        if (copies.Any(c => c.Tag != tag))
            logger.LogError("Intake: request {Key} was written under more than one tag: {Tags}", key, string.Join(", ", copies.Select(c => c.Tag).Distinct()));
        var holding = copies.Where(c => c.Tag == tag).Select(c => c.DeviceId).Distinct(StringComparer.Ordinal).Count();
        var ok = holding >= v.MinMirrors;
        logger.LogInformation("Intake: request {Key} of volume {Volume} had no outcome; found as write {Tag} on {Holding} mirrors", key, v.Name, tag, holding);
        return new IntakeOutcome(d.ProducerId!, d.RequestId!, v.Name, ok, tag, copies[0].FirstBlock, copies[0].Blocks, holding, v.Mirrors.Length,
            ok ? null : $"write {tag} reached {holding} of {v.Mirrors.Length} mirrors; volume {v.Name} needs {v.MinMirrors}");
    }

    /// <summary>
    /// One span per request, linked to the producer's publish span when the message carries its context; the write's
    /// produce spans are its children.
    /// </summary>
    private Activity? StartSpan(IntakeMessage m, IntakeDecoded d, string volume)
    {
        var links = KafkaTracing.TryExtract(m.Headers, out var producer) ? new[] { new ActivityLink(producer) } : null;
        var span = controllerTelemetry.Source.StartActivity("intake write", ActivityKind.Consumer, default(ActivityContext), links: links);
        if (span is not { IsAllDataRequested: true }) return span;
        span.SetTag(KafkaTracing.System, "kafka");
        span.SetTag(KafkaTracing.OperationType, "process");
        span.SetTag(KafkaTracing.Destination, options.Intake.RequestsTopic);
        span.SetTag(KafkaTracing.Partition, m.Partition.ToString(CultureInfo.InvariantCulture));
        span.SetTag(KafkaTracing.Offset, m.Offset);
        span.SetTag(TelemetryAttributes.Volume, volume);
        if (d.Request is { } r) span.SetTag(TelemetryAttributes.FirstBlock, r.FirstBlock);
        if (d.ProducerId is not null && d.RequestId is not null) span.SetTag("tm.intake.request", IntakeCodec.RequestKey(d.ProducerId, d.RequestId));
        return span;
    }
}
