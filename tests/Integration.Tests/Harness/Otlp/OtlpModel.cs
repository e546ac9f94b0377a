namespace TaggedMirror.Integration.Tests.Harness.Otlp;

/// <summary>
/// One span as an OTLP exporter sent it. Ids are lowercase hex, as <c>ActivityTraceId.ToHexString()</c> prints them;
/// <paramref name="Kind"/> is the OTLP number (1 internal, 2 server, 3 client, 4 producer, 5 consumer), which is
/// <c>(int)ActivityKind + 1</c>; <paramref name="StatusCode"/> is 0 unset, 1 ok, 2 error.
/// </summary>
internal sealed record ReceivedSpan(
    string ServiceName,
    string ScopeName,
    string TraceId,
    string SpanId,
    string? ParentSpanId,
    string Name,
    int Kind,
    ulong StartUnixNano,
    ulong EndUnixNano,
    IReadOnlyDictionary<string, object?> Attributes,
    IReadOnlyList<ReceivedLink> Links,
    int StatusCode);

internal sealed record ReceivedLink(string TraceId, string SpanId, IReadOnlyDictionary<string, object?> Attributes);

internal enum MetricPointKind
{
    Gauge,
    Sum,
    Histogram,
}

/// <summary>
/// One data point of a gauge, sum or explicit-bucket histogram. <paramref name="Value"/> is the gauge or sum value
/// (integers widened to double) or the histogram's sum; <paramref name="Count"/> is the histogram's count, else 0.
/// </summary>
internal sealed record ReceivedMetricPoint(
    string ServiceName,
    string ScopeName,
    string MetricName,
    string Unit,
    MetricPointKind Kind,
    IReadOnlyDictionary<string, object?> Attributes,
    double Value,
    ulong Count,
    ulong TimeUnixNano)
{
    /// <summary>Histogram bucket counts, one more than <see cref="ExplicitBounds"/>; empty for gauges and sums.</summary>
    public IReadOnlyList<ulong> BucketCounts { get; init; } = [];

    /// <summary>Histogram upper bounds (the last bucket is unbounded).</summary>
    public IReadOnlyList<double> ExplicitBounds { get; init; } = [];

    public double? Min { get; init; }

    public double? Max { get; init; }
}
