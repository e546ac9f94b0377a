using System.Globalization;
using OpenTelemetry.Proto.Collector.Trace.V1;
using OpenTelemetry.Proto.Resource.V1;

namespace TaggedMirror.Cli.Otlp;

/// <summary>
/// Span durations by service and span name, from OTLP <c>ExportTraceServiceRequest</c> bodies: where a write's time
/// goes, per stage (the request, each copy's produce, each device's receive, apply and record, the acknowledgement),
/// without a trace viewer. Thread-safe.
/// </summary>
internal sealed class OtlpSpanStats
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(string Service, string Name), List<double>> _durations = [];

    /// <summary>Spans taken in (with an end at or after their start).</summary>
    public long Spans { get; private set; }

    /// <summary>
    /// Adds every span of a request body. Throws <see cref="Google.Protobuf.InvalidProtocolBufferException"/> for a body
    /// that is not one (the sink answers 400 and counts it).
    /// </summary>
    public void Add(ReadOnlySpan<byte> body)
    {
        var request = ExportTraceServiceRequest.Parser.ParseFrom(body);
        lock (_lock)
        {
            foreach (var resourceSpans in request.ResourceSpans)
            {
                var service = ServiceName(resourceSpans.Resource);
                foreach (var span in resourceSpans.ScopeSpans.SelectMany(s => s.Spans))
                {
                    if (span.EndTimeUnixNano < span.StartTimeUnixNano) continue;
                    var key = (service, span.Name);
                    if (!_durations.TryGetValue(key, out var list)) _durations[key] = list = [];
                    list.Add((span.EndTimeUnixNano - span.StartTimeUnixNano) / 1e6);
                    Spans++;
                }
            }
        }
    }

    /// <summary>One line per service and span name, in that order.</summary>
    public IReadOnlyList<SpanSummary> Summary()
    {
        lock (_lock)
        {
            return
            [
                .. _durations.OrderBy(kv => kv.Key.Service, StringComparer.Ordinal).ThenBy(kv => kv.Key.Name, StringComparer.Ordinal)
                    .Select(kv => SpanSummary.Of(kv.Key.Service, kv.Key.Name, kv.Value)),
            ];
        }
    }

    private static string ServiceName(Resource? resource) =>
        resource?.Attributes.FirstOrDefault(a => a.Key == "service.name")?.Value?.StringValue ?? "";
}

/// <summary>Durations of one service's spans of one name, in milliseconds.</summary>
internal sealed record SpanSummary(string Service, string Name, long Count, double MeanMs, double P50Ms, double P99Ms, double MaxMs)
{
    public static SpanSummary Of(string service, string name, List<double> durations)
    {
        var sorted = durations.Order().ToArray();
        return new SpanSummary(service, name, sorted.Length, sorted.Average(), Rank(sorted, 0.50), Rank(sorted, 0.99), sorted[^1]);
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Service} / {Name}: {Count} spans, mean {MeanMs:0.000} ms, p50 {P50Ms:0.000}, p99 {P99Ms:0.000}, max {MaxMs:0.000}");

    /// <summary>The nearest-rank percentile of sorted values.</summary>
    private static double Rank(double[] sorted, double q) => sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
}
