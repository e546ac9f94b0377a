using Google.Protobuf;
using Google.Protobuf.Collections;
using OpenTelemetry.Proto.Collector.Metrics.V1;
using OpenTelemetry.Proto.Collector.Trace.V1;
using OpenTelemetry.Proto.Common.V1;
using OpenTelemetry.Proto.Metrics.V1;
using OpenTelemetry.Proto.Resource.V1;
using OpenTelemetry.Proto.Trace.V1;

namespace TaggedMirror.Integration.Tests.Harness.Otlp;

/// <summary>
/// Parses OTLP <c>ExportTraceServiceRequest</c> and <c>ExportMetricsServiceRequest</c> bodies with the messages
/// Grpc.Tools generates from the vendored opentelemetry-proto files (<c>src/Cli/Otlp/Proto/README.md</c>), and flattens them
/// into the records the tests assert on. A body the protobuf runtime cannot parse (truncated, malformed, not UTF-8,
/// nested past its recursion limit of 100) throws <see cref="InvalidProtocolBufferException"/>.
/// </summary>
internal static class OtlpDecoder
{
    public static List<ReceivedSpan> DecodeTraces(ReadOnlySpan<byte> request) =>
        ToSpans(ExportTraceServiceRequest.Parser.ParseFrom(request));

    public static List<ReceivedMetricPoint> DecodeMetrics(ReadOnlySpan<byte> request) =>
        ToPoints(ExportMetricsServiceRequest.Parser.ParseFrom(request));

    public static List<ReceivedSpan> ToSpans(ExportTraceServiceRequest request) =>
    [
        .. from resourceSpans in request.ResourceSpans
           let service = ServiceName(resourceSpans.Resource)
           from scopeSpans in resourceSpans.ScopeSpans
           from span in scopeSpans.Spans
           select ToSpan(span, service, scopeSpans.Scope?.Name ?? ""),
    ];

    public static List<ReceivedMetricPoint> ToPoints(ExportMetricsServiceRequest request)
    {
        var points = new List<ReceivedMetricPoint>();
        foreach (var resourceMetrics in request.ResourceMetrics)
        {
            var service = ServiceName(resourceMetrics.Resource);
            foreach (var scopeMetrics in resourceMetrics.ScopeMetrics)
            {
                var scope = scopeMetrics.Scope?.Name ?? "";
                foreach (var metric in scopeMetrics.Metrics)
                    AddPoints(metric, service, scope, points);
            }
        }
        return points;
    }

    private static ReceivedSpan ToSpan(Span span, string service, string scope) => new(
        service,
        scope,
        Hex(span.TraceId),
        Hex(span.SpanId),
        ParentId(span.ParentSpanId),
        span.Name,
        (int)span.Kind,
        span.StartTimeUnixNano,
        span.EndTimeUnixNano,
        Attributes(span.Attributes),
        [.. span.Links.Select(l => new ReceivedLink(Hex(l.TraceId), Hex(l.SpanId), Attributes(l.Attributes)))],
        (int)(span.Status?.Code ?? Status.Types.StatusCode.Unset));

    // Exponential histograms and summaries are not read: no test's instrument produces them.
    private static void AddPoints(Metric metric, string service, string scope, List<ReceivedMetricPoint> points)
    {
        switch (metric.DataCase)
        {
            case Metric.DataOneofCase.Gauge:
                points.AddRange(metric.Gauge.DataPoints.Select(p => NumberPoint(p, MetricPointKind.Gauge)));
                break;
            case Metric.DataOneofCase.Sum:
                points.AddRange(metric.Sum.DataPoints.Select(p => NumberPoint(p, MetricPointKind.Sum)));
                break;
            case Metric.DataOneofCase.Histogram:
                points.AddRange(metric.Histogram.DataPoints.Select(p =>
                    new ReceivedMetricPoint(service, scope, metric.Name, metric.Unit, MetricPointKind.Histogram, Attributes(p.Attributes),
                        p.HasSum ? p.Sum : 0, p.Count, p.TimeUnixNano)
                    {
                        BucketCounts = [.. p.BucketCounts],
                        ExplicitBounds = [.. p.ExplicitBounds],
                        Min = p.HasMin ? p.Min : null,
                        Max = p.HasMax ? p.Max : null,
                    }));
                break;
        }

        ReceivedMetricPoint NumberPoint(NumberDataPoint p, MetricPointKind kind) =>
            new(service, scope, metric.Name, metric.Unit, kind, Attributes(p.Attributes),
                p.ValueCase == NumberDataPoint.ValueOneofCase.AsInt ? p.AsInt : p.AsDouble, 0, p.TimeUnixNano);
    }

    private static string ServiceName(Resource? resource) =>
        Attributes(resource?.Attributes).GetValueOrDefault("service.name") as string ?? "";

    private static string Hex(ByteString id) => Convert.ToHexStringLower(id.Span);

    // A root span leaves parent_span_id empty; all zeros is the invalid id, so no parent either.
    private static string? ParentId(ByteString id) => id.Span.ContainsAnyExcept((byte)0) ? Hex(id) : null;

    // A key sent twice keeps its last value, as a map field would.
    private static Dictionary<string, object?> Attributes(RepeatedField<KeyValue>? attributes)
    {
        var into = new Dictionary<string, object?>();
        foreach (var kv in attributes ?? [])
            into[kv.Key] = Value(kv.Value);
        return into;
    }

    // An AnyValue with no value set (or absent) is null.
    private static object? Value(AnyValue? value) => value?.ValueCase switch
    {
        AnyValue.ValueOneofCase.StringValue => value.StringValue,
        AnyValue.ValueOneofCase.BoolValue => value.BoolValue,
        AnyValue.ValueOneofCase.IntValue => value.IntValue,
        AnyValue.ValueOneofCase.DoubleValue => value.DoubleValue,
        AnyValue.ValueOneofCase.ArrayValue => value.ArrayValue.Values.Select(Value).ToArray(),
        AnyValue.ValueOneofCase.KvlistValue => Attributes(value.KvlistValue.Values),
        AnyValue.ValueOneofCase.BytesValue => value.BytesValue.ToByteArray(),
        _ => null,
    };
}
