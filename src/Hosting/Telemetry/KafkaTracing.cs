using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using TaggedMirror.Contracts.Transactions;

namespace TaggedMirror.Hosting.Telemetry;

/// <summary>
/// W3C trace context in Kafka headers, and the OpenTelemetry messaging attribute names we set on spans.
/// The controller injects the produce span's context into every transaction it sends; the device agent
/// extracts it, so one write's trace goes through the log to every mirror. Nothing is added to a message
/// when nobody is tracing (no activity): the data path pays nothing then.
/// </summary>
public static class KafkaTracing
{
    /// <summary><c>messaging.system</c>.</summary>
    public const string System = "messaging.system";

    /// <summary><c>messaging.operation.type</c>: send, receive or process.</summary>
    public const string OperationType = "messaging.operation.type";

    /// <summary><c>messaging.destination.name</c>: the topic.</summary>
    public const string Destination = "messaging.destination.name";

    /// <summary><c>messaging.destination.partition.id</c>.</summary>
    public const string Partition = "messaging.destination.partition.id";

    /// <summary><c>messaging.kafka.offset</c>.</summary>
    public const string Offset = "messaging.kafka.offset";

    /// <summary><c>messaging.kafka.message.key</c>.</summary>
    public const string Key = "messaging.kafka.message.key";

    /// <summary><c>messaging.batch.message_count</c>.</summary>
    public const string BatchCount = "messaging.batch.message_count";

    /// <summary><c>messaging.consumer.group.name</c>.</summary>
    public const string ConsumerGroup = "messaging.consumer.group.name";

    /// <summary>Adds the activity's context as <c>traceparent</c> (and <c>tracestate</c>) headers.</summary>
    public static void Inject(Activity? activity, Headers headers)
    {
        if (activity?.Id is not { } id || activity.IdFormat != ActivityIdFormat.W3C) return;
        headers.Add(HeaderNames.TraceParent, Encoding.ASCII.GetBytes(id));
        if (activity.TraceStateString is { Length: > 0 } state)
            headers.Add(HeaderNames.TraceState, Encoding.ASCII.GetBytes(state));
    }

    /// <summary>The <c>traceparent</c> header of a message, or null.</summary>
    public static string? TraceParentOf(Headers? headers) =>
        headers is not null && headers.TryGetLastBytes(HeaderNames.TraceParent, out var bytes) && bytes.Length is > 0 and < 128
            ? Encoding.ASCII.GetString(bytes)
            : null;

    /// <summary>The remote context a message carries; false when it has none or it does not parse.</summary>
    public static bool TryExtract(Headers? headers, out ActivityContext context)
    {
        context = default;
        if (TraceParentOf(headers) is not { } parent) return false;
        string? state = headers!.TryGetLastBytes(HeaderNames.TraceState, out var s) ? Encoding.ASCII.GetString(s) : null;
        return ActivityContext.TryParse(parent, state, isRemote: true, out context);
    }

    /// <summary>A context from a stored <c>traceparent</c> (a tag-table entry's), for a link.</summary>
    public static bool TryParse(string? traceParent, out ActivityContext context)
    {
        context = default;
        return traceParent is { Length: > 0 } && ActivityContext.TryParse(traceParent, null, isRemote: true, out context);
    }
}
