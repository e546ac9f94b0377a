using System.Diagnostics;
using System.Diagnostics.Metrics;
using Confluent.Kafka;
using Microsoft.Extensions.Options;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.DeviceAgent;

/// <summary>
/// The agent's spans and meters (source and meter <c>TaggedMirror.DeviceAgent</c>). Per batch: a consume span
/// with children apply (block store, flush) and record (the PostgreSQL transaction; Npgsql's own spans nest
/// under it), each linked to the produce span of every transaction in the batch; and per transaction a receive
/// span that is a child of its produce span, so a write's trace shows it arriving on every mirror.
/// </summary>
internal sealed class AgentTelemetry
{
    // The OpenTelemetry SDK keeps 128 links per span by default; more would be dropped anyway.
    private const int MaxLinks = 128;

    private readonly KeyValuePair<string, object?> _device;

    public AgentTelemetry(TaggedMirrorTelemetry telemetry, IOptions<AgentOptions> options, DeviceStatus status)
    {
        DeviceId = options.Value.DeviceId;
        _device = new(TelemetryAttributes.Device, DeviceId);
        Source = telemetry.Source;
        var meter = telemetry.Meter;
        Applied = meter.CreateCounter<long>("tm.device.applied", "{transaction}", "Transactions applied and recorded in the tag table");
        AppliedBytes = meter.CreateCounter<long>("tm.device.applied.bytes", "By", "Bytes written to the block store");
        DeadLettered = meter.CreateCounter<long>("tm.deadlettered", "{transaction}", "Transactions refused and put on the dead-letter topic");
        meter.CreateObservableGauge("tm.tagtable.live_entries", () => new Measurement<int>(status.LiveEntries, _device),
            "{entry}", "Live tag-table entries: applied writes whose tokens have not come back yet");
    }

    public string DeviceId { get; }

    public ActivitySource Source { get; }

    public Counter<long> Applied { get; }

    public Counter<long> AppliedBytes { get; }

    public Counter<long> DeadLettered { get; }

    public void CountBatch(long transactions, long bytes, long refused)
    {
        if (transactions > 0) Applied.Add(transactions, _device);
        if (bytes > 0) AppliedBytes.Add(bytes, _device);
        if (refused > 0) DeadLettered.Add(refused, _device);
    }

    /// <summary>The spans of one batch, or an empty set when nobody is tracing.</summary>
    public BatchSpans StartBatch(IReadOnlyList<ConsumeResult<byte[]?, byte[]?>> messages, string topic)
    {
        if (!Source.HasListeners()) return default;
        var links = new List<ActivityLink>(Math.Min(messages.Count, MaxLinks));
        var producers = new ActivityContext[messages.Count];
        for (var i = 0; i < messages.Count; i++)
        {
            if (!KafkaTracing.TryExtract(messages[i].Message.Headers, out producers[i])) continue;
            if (links.Count < MaxLinks) links.Add(new ActivityLink(producers[i]));
        }
        var consume = Source.StartActivity("consume " + topic, ActivityKind.Consumer, parentContext: default, links: links);
        if (consume is null) return default;
        consume.SetTag(KafkaTracing.System, "kafka");
        consume.SetTag(KafkaTracing.OperationType, "process");
        consume.SetTag(KafkaTracing.Destination, topic);
        consume.SetTag(KafkaTracing.BatchCount, messages.Count);
        consume.SetTag(TelemetryAttributes.Device, DeviceId);

        var receives = new Activity?[messages.Count];
        var back = new[] { new ActivityLink(consume.Context) };
        for (var i = 0; i < messages.Count; i++)
        {
            if (producers[i] == default) continue;
            var m = messages[i];
            var r = Source.StartActivity("receive " + topic, ActivityKind.Consumer, producers[i], links: back);
            if (r is null) continue;
            r.SetTag(KafkaTracing.System, "kafka");
            r.SetTag(KafkaTracing.OperationType, "receive");
            r.SetTag(KafkaTracing.Destination, topic);
            r.SetTag(KafkaTracing.Partition, m.Partition.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
            r.SetTag(KafkaTracing.Offset, m.Offset.Value);
            r.SetTag(TelemetryAttributes.Device, DeviceId);
            receives[i] = r;
        }
        Activity.Current = consume;
        return new BatchSpans(consume, receives, links);
    }
}

/// <summary>A batch's consume span, its per-transaction receive spans, and the links its phases share.</summary>
internal readonly record struct BatchSpans(Activity? Consume, Activity?[]? Receives, List<ActivityLink>? Links)
{
    /// <summary>A phase of the batch (apply, record) as a child of the consume span, linked like it.</summary>
    public Activity? StartPhase(ActivitySource source, string name) =>
        Consume is null ? null : source.StartActivity(name, ActivityKind.Internal, Consume.Context, links: Links);

    /// <summary>Marks a refused transaction's receive span as failed, with the reason.</summary>
    public void Refused(int index, string reason) => Receives?[index]?.SetStatus(ActivityStatusCode.Error, reason);

    /// <summary>Ends every span of the batch: everything in it is recorded (or the batch failed).</summary>
    public void End(Exception? failure = null)
    {
        if (Consume is null) return;
        foreach (var r in Receives!) r?.Stop();
        if (failure is not null) Consume.SetStatus(ActivityStatusCode.Error, failure.Message);
        Consume.Stop();
    }
}
