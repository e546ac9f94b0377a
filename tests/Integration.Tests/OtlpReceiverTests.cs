using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Google.Protobuf;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using TaggedMirror.Integration.Tests.Harness;
using TaggedMirror.Integration.Tests.Harness.Otlp;
using WireType = Google.Protobuf.WireFormat.WireType;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// The OTLP receiver decodes what the real OpenTelemetry .NET exporter sends (in-process, no servers besides the
/// receiver), and rejects what it cannot decode with a clear error instead of a crash. The hand-built bodies below
/// check the mapping from the generated OTLP messages and that the parser takes what the exporter may send (lengths
/// padded to four bytes, unknown fields, the resource after its spans) and refuses what it must.
/// </summary>
public sealed class OtlpReceiverTests
{
    private const WireType Len = WireType.LengthDelimited;

    [Fact]
    public async Task spans_from_the_real_exporter_decode_with_ids_kinds_attributes_links_and_status()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        using var source = new ActivitySource("test.source");
        using var tracer = Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(ResourceBuilder.CreateEmpty().AddService("otlp-test-traces"))
            .AddSource("test.source")
            .AddOtlpExporter(o =>
            {
                o.Endpoint = new Uri(receiver.Endpoint, "v1/traces");
                o.Protocol = OtlpExportProtocol.HttpProtobuf;
            })
            .Build();

        var parent = source.StartActivity("handle request", ActivityKind.Server) ?? throw new InvalidOperationException("not sampled");
        parent.SetTag("s", "text");
        parent.SetTag("l", 42L);
        parent.SetTag("i", 7);
        parent.SetTag("d", 1.5);
        parent.SetTag("b", true);
        parent.SetTag("arr", new[] { "a", "b" });
        var child = source.StartActivity("publish", ActivityKind.Producer) ?? throw new InvalidOperationException("not sampled");
        child.SetStatus(ActivityStatusCode.Error, "broker down");
        child.Dispose();
        parent.Dispose();
        var elsewhere = new ActivityContext(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded);
        var linked = source.StartActivity("consume", ActivityKind.Consumer, parentContext: default,
            links: [new ActivityLink(elsewhere, new ActivityTagsCollection { ["link.reason"] = "batch", ["link.n"] = 3L })])
            ?? throw new InvalidOperationException("not sampled");
        linked.Dispose();
        Assert.True(tracer.ForceFlush(10_000), "ForceFlush timed out");

        Assert.Empty(receiver.DecodeErrors);
        Assert.True(receiver.TraceRequests >= 1);
        var spans = receiver.Spans;
        Assert.Equal(3, spans.Count);
        Assert.All(spans, s =>
        {
            Assert.Equal("otlp-test-traces", s.ServiceName);
            Assert.Equal("test.source", s.ScopeName);
        });

        var p = Assert.Single(spans, s => s.Name == "handle request");
        Assert.Equal(parent.TraceId.ToHexString(), p.TraceId);
        Assert.Equal(parent.SpanId.ToHexString(), p.SpanId);
        Assert.Null(p.ParentSpanId);
        Assert.Equal(2, p.Kind);
        Assert.Equal(UnixNanos(parent.StartTimeUtc), p.StartUnixNano);
        Assert.Equal(UnixNanos(parent.StartTimeUtc) + (ulong)(parent.Duration.Ticks * 100), p.EndUnixNano);
        Assert.Equal("text", p.Attributes["s"]);
        Assert.Equal(42L, p.Attributes["l"]);
        Assert.Equal(7L, p.Attributes["i"]);
        Assert.Equal(1.5, p.Attributes["d"]);
        Assert.Equal(true, p.Attributes["b"]);
        Assert.Equal(new object[] { "a", "b" }, Assert.IsType<object[]>(p.Attributes["arr"]));
        Assert.Empty(p.Links);
        Assert.Equal(0, p.StatusCode);

        var c = Assert.Single(spans, s => s.Name == "publish");
        Assert.Equal(parent.TraceId.ToHexString(), c.TraceId);
        Assert.Equal(child.SpanId.ToHexString(), c.SpanId);
        Assert.Equal(parent.SpanId.ToHexString(), c.ParentSpanId);
        Assert.Equal(4, c.Kind);
        Assert.Equal(2, c.StatusCode);

        var l = Assert.Single(spans, s => s.Name == "consume");
        Assert.Equal(linked.TraceId.ToHexString(), l.TraceId);
        Assert.NotEqual(parent.TraceId.ToHexString(), l.TraceId);
        Assert.Null(l.ParentSpanId);
        Assert.Equal(5, l.Kind);
        var link = Assert.Single(l.Links);
        Assert.Equal(elsewhere.TraceId.ToHexString(), link.TraceId);
        Assert.Equal(elsewhere.SpanId.ToHexString(), link.SpanId);
        Assert.Equal("batch", link.Attributes["link.reason"]);
        Assert.Equal(3L, link.Attributes["link.n"]);
    }

    [Fact]
    public async Task metrics_from_the_real_exporter_decode_with_values_counts_buckets_and_attributes()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var before = UnixNanos(DateTime.UtcNow);
        using var meter = new Meter("test.meter");
        var requests = meter.CreateCounter<long>("test.requests", unit: "{request}");
        var latency = meter.CreateHistogram<double>("test.latency", unit: "ms");
        meter.CreateObservableGauge("test.depth", () => new Measurement<long>(9, new KeyValuePair<string, object?>("queue", "q1")));
        using var meters = Sdk.CreateMeterProviderBuilder()
            .SetResourceBuilder(ResourceBuilder.CreateEmpty().AddService("otlp-test-metrics"))
            .AddMeter("test.meter")
            .AddView("test.latency", new ExplicitBucketHistogramConfiguration { Boundaries = [1, 10, 100] })
            .AddOtlpExporter(o =>
            {
                o.Endpoint = new Uri(receiver.Endpoint, "v1/metrics");
                o.Protocol = OtlpExportProtocol.HttpProtobuf;
            })
            .Build();

        requests.Add(3, new KeyValuePair<string, object?>("op", "read"));
        requests.Add(4, new KeyValuePair<string, object?>("op", "read"));
        requests.Add(5, new KeyValuePair<string, object?>("op", "write"));
        foreach (var ms in new[] { 0.5, 3, 7, 50 })
            latency.Record(ms, new KeyValuePair<string, object?>("path", "/x"), new KeyValuePair<string, object?>("ok", true));
        Assert.True(meters.ForceFlush(10_000), "ForceFlush timed out");

        Assert.Empty(receiver.DecodeErrors);
        Assert.Equal(1, receiver.MetricRequests);
        var points = receiver.MetricPoints;
        Assert.Equal(4, points.Count);
        Assert.All(points, m =>
        {
            Assert.Equal("otlp-test-metrics", m.ServiceName);
            Assert.Equal("test.meter", m.ScopeName);
            Assert.InRange(m.TimeUnixNano, before, UnixNanos(DateTime.UtcNow));
        });

        var read = Assert.Single(points, m => m.MetricName == "test.requests" && Equals(m.Attributes.GetValueOrDefault("op"), "read"));
        Assert.Equal((MetricPointKind.Sum, "{request}", 7.0, 0UL), (read.Kind, read.Unit, read.Value, read.Count));
        var write = Assert.Single(points, m => m.MetricName == "test.requests" && Equals(m.Attributes.GetValueOrDefault("op"), "write"));
        Assert.Equal(5.0, write.Value);

        var depth = Assert.Single(points, m => m.MetricName == "test.depth");
        Assert.Equal((MetricPointKind.Gauge, 9.0), (depth.Kind, depth.Value));
        Assert.Equal("q1", depth.Attributes["queue"]);

        var h = Assert.Single(points, m => m.MetricName == "test.latency");
        Assert.Equal((MetricPointKind.Histogram, "ms", 60.5, 4UL), (h.Kind, h.Unit, h.Value, h.Count));
        Assert.Equal([1.0, 10, 100], h.ExplicitBounds);
        Assert.Equal([1UL, 2, 1, 0], h.BucketCounts);
        Assert.Equal((0.5, 50.0), (h.Min, h.Max));
        Assert.Equal("/x", h.Attributes["path"]);
        Assert.Equal(true, h.Attributes["ok"]);
    }

    [Fact]
    public async Task the_exporter_environment_makes_the_sdk_export_here_quickly_without_a_flush()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        // The SDK reads its OTEL_* settings from an IConfiguration registered with the provider, else from the
        // process environment; handing it the receiver's variables tests them without touching this process's.
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(receiver.ExporterEnvironment("env-service").Select(kv => KeyValuePair.Create(kv.Key, (string?)kv.Value)))
            .Build();
        using var source = new ActivitySource("test.env.source");
        using var meter = new Meter("test.env.meter");
        var counter = meter.CreateCounter<long>("test.env.count");
        using var tracer = Sdk.CreateTracerProviderBuilder()
            .ConfigureServices(s => s.AddSingleton<IConfiguration>(configuration))
            .AddSource("test.env.source")
            .AddOtlpExporter()
            .Build();
        using var meters = Sdk.CreateMeterProviderBuilder()
            .ConfigureServices(s => s.AddSingleton<IConfiguration>(configuration))
            .AddMeter("test.env.meter")
            .AddOtlpExporter()
            .Build();

        source.StartActivity("tick")?.Dispose();
        counter.Add(1);

        // The SDK's defaults are 5 s for spans and 60 s for metrics; 200 ms and 500 ms must show well within 3 s.
        await Eventually.TrueAsync(() => Task.FromResult(receiver.Spans.Count > 0 && receiver.MetricPoints.Count > 0), TimeSpan.FromSeconds(3),
            () => $"spans {receiver.Spans.Count}, metric points {receiver.MetricPoints.Count}, errors: {string.Join("; ", receiver.DecodeErrors)}");
        Assert.Empty(receiver.DecodeErrors);
        Assert.Equal("env-service", Assert.Single(receiver.Spans).ServiceName);
        Assert.Equal("env-service", receiver.MetricPoints[0].ServiceName);
    }

    [Fact]
    public async Task the_receiver_takes_gzip_answers_empty_protobuf_and_rejects_bad_bodies()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        using var http = new HttpClient();
        var traces = new Uri(receiver.Endpoint, "v1/traces");
        var metrics = new Uri(receiver.Endpoint, "v1/metrics");

        using var zipped = new MemoryStream();
        using (var gzip = new GZipStream(zipped, CompressionLevel.Fastest, leaveOpen: true))
            gzip.Write(TraceRequest());
        using (var ok = await http.PostAsync(traces, Protobuf(zipped.ToArray(), gzip: true)))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal("application/x-protobuf", ok.Content.Headers.ContentType?.MediaType);
            Assert.Empty(await ok.Content.ReadAsByteArrayAsync());
        }
        Assert.Empty(receiver.DecodeErrors);
        Assert.Equal("checkout", Assert.Single(receiver.Spans).Name);
        Assert.Equal(1, receiver.TraceRequests);

        // resource_metrics of 5 bytes, of which only an empty resource (2 bytes) arrives.
        using (var bad = await http.PostAsync(metrics, Protobuf([0x0A, 0x05, 0x0A, 0x00])))
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        using (var json = await http.PostAsync(metrics, new StringContent("{}", Encoding.UTF8, "application/json")))
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, json.StatusCode);
        using (var elsewhere = await http.PostAsync(new Uri(receiver.Endpoint, "v1/logs"), Protobuf([])))
            Assert.Equal(HttpStatusCode.NotFound, elsewhere.StatusCode);
        Assert.Equal(0, receiver.MetricRequests);
        Assert.Collection(receiver.DecodeErrors,
            e => Assert.StartsWith("/v1/metrics: While parsing a protocol message, the input ended unexpectedly", e, StringComparison.Ordinal),
            e => Assert.Contains("application/json", e, StringComparison.Ordinal));

        receiver.Clear();
        Assert.Empty(receiver.Spans);
        Assert.Empty(receiver.DecodeErrors);
        Assert.Equal(0, receiver.TraceRequests);
    }

    [Fact]
    public void a_hand_built_request_decodes_every_attribute_value_type()
    {
        var span = Assert.Single(OtlpDecoder.DecodeTraces(TraceRequest()));
        Assert.Equal(("svc", "scope", "checkout", 2, 2), (span.ServiceName, span.ScopeName, span.Name, span.Kind, span.StatusCode));
        Assert.Equal("0102030405060708090a0b0c0d0e0f10", span.TraceId);
        Assert.Equal(("0909090909090909", "0707070707070707"), (span.SpanId, span.ParentSpanId));
        Assert.Equal((1_000UL, 2_000UL), (span.StartUnixNano, span.EndUnixNano));
        Assert.Equal(new object?[] { "x", 5L, null }, span.Attributes["list"]);
        Assert.Equal(-0.25, Assert.IsType<Dictionary<string, object?>>(span.Attributes["map"])["k"]);
        Assert.Equal(new byte[] { 0xAB }, span.Attributes["deep"]);
        var link = Assert.Single(span.Links);
        Assert.Equal((new string('0', 32), new string('0', 16)), (link.TraceId, link.SpanId));

        var point = Assert.Single(OtlpDecoder.DecodeMetrics(MetricRequest(Message(6, Fixed64Bits(1), Fixed64Bits(2)))));
        Assert.Equal(("svc", "meter", "h", "ms"), (point.ServiceName, point.ScopeName, point.MetricName, point.Unit));
        Assert.Equal((MetricPointKind.Histogram, 1.5, 3UL, 5UL), (point.Kind, point.Value, point.Count, point.TimeUnixNano));
        Assert.Equal(new ulong[] { 1, 2 }, point.BucketCounts);
    }

    [Fact]
    public void every_truncation_and_malformed_input_throws_InvalidProtocolBufferException()
    {
        var traces = TraceRequest();
        var metrics = MetricRequest(Message(6, Fixed64Bits(1), Fixed64Bits(2)));
        // One top-level field wraps everything, so every proper prefix ends inside it.
        for (var n = 1; n < traces.Length; n++)
        {
            var prefix = traces[..n];
            Assert.Throws<InvalidProtocolBufferException>(() => OtlpDecoder.DecodeTraces(prefix));
        }
        for (var n = 1; n < metrics.Length; n++)
        {
            var prefix = metrics[..n];
            Assert.Throws<InvalidProtocolBufferException>(() => OtlpDecoder.DecodeMetrics(prefix));
        }

        byte[][] malformed =
        [
            [0x0F],                                   // wire type 7
            [0x0E, 0x00],                             // wire type 6
            [0x00, 0x00],                             // field number 0
            [0x0C],                                   // end-group with no group open
            [0x0B, 0x08, 0x01],                       // group never closed
            [0x0B, 0x14],                             // group 1 closed by end-group 2
            [0x0A, 0x05, 0x01],                       // length past the end
            [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], // length near 2^64
            [0x08, .. Enumerable.Repeat((byte)0xFF, 10), 0x01], // varint longer than 10 bytes
            [0x09, 0x01, 0x02],                       // fixed64 cut short
            [0x0D, 0x01],                             // fixed32 cut short
        ];
        foreach (var bytes in malformed)
        {
            Assert.Throws<InvalidProtocolBufferException>(() => OtlpDecoder.DecodeTraces(bytes));
            Assert.Throws<InvalidProtocolBufferException>(() => OtlpDecoder.DecodeMetrics(bytes));
        }
        Assert.Throws<InvalidProtocolBufferException>(() => OtlpDecoder.DecodeTraces(TraceRequest(name: [0xC3, 0x28])));   // not UTF-8
        Assert.Throws<InvalidProtocolBufferException>(() => OtlpDecoder.DecodeTraces(TraceRequest(attribute: Nested(100)))); // too deep
        Assert.Throws<InvalidProtocolBufferException>(() => OtlpDecoder.DecodeMetrics(MetricRequest(Message(6, [1, 2, 3])))); // 3-byte packed fixed64
    }

    [Fact]
    public void unknown_fields_of_every_wire_type_are_skipped_and_the_resource_may_come_last()
    {
        var unknown = Concat(
            Varint(100, 5), Fixed64(101, 6), Message(102, [1, 2, 3]), Fixed32(104, 7),
            [.. Tag(103, WireType.StartGroup), .. Varint(1, 1), .. Tag(105, WireType.StartGroup), .. Tag(105, WireType.EndGroup), .. Tag(103, WireType.EndGroup)],
            Varint(5, 9)); // a known field (span name) with the wrong wire type is skipped, not misread
        var span = Concat(unknown, Message(1, new byte[16]), Message(2, [1, 2, 3, 4, 5, 6, 7, 8]), unknown,
            Message(4, new byte[8]), Str(5, "late"), Varint(6, 3), Fixed32(16, 0x301));
        var request = Message(1,
            Message(2, unknown, Message(2, span), Message(1, Str(1, "scope-after"))),
            unknown,
            Message(1, Message(1, Str(1, "service.name"), Message(2, Str(1, "svc-last")))));

        var s = Assert.Single(OtlpDecoder.DecodeTraces(request));
        Assert.Equal(("svc-last", "scope-after", "late", 3), (s.ServiceName, s.ScopeName, s.Name, s.Kind));
        Assert.Equal("0102030405060708", s.SpanId);
        Assert.Null(s.ParentSpanId); // eight zero bytes are the invalid id

        // Histogram buckets one per tag instead of packed, bounds packed, and the metric's name after its data.
        var metric = Message(1, Message(2, Message(2,
            Message(9, Message(1, Fixed64(6, 3), Fixed64(6, 4), Message(7, Fixed64Bits(BitConverter.DoubleToUInt64Bits(2.5))), Fixed64(4, 7), unknown)),
            Str(1, "late.histogram"))));
        var h = Assert.Single(OtlpDecoder.DecodeMetrics(metric));
        Assert.Equal(("late.histogram", MetricPointKind.Histogram, 7UL), (h.MetricName, h.Kind, h.Count));
        Assert.Equal([3UL, 4], h.BucketCounts);
        Assert.Equal([2.5], h.ExplicitBounds);
        Assert.Null(h.Min);
    }

    private static ulong UnixNanos(DateTime utc) => (ulong)(utc - DateTime.UnixEpoch).Ticks * 100;

    private static ByteArrayContent Protobuf(byte[] body, bool gzip = false)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
        if (gzip) content.Headers.ContentEncoding.Add("gzip");
        return content;
    }

    // A hand-built ExportTraceServiceRequest with one span, one top-level field and nested attributes.
    private static byte[] TraceRequest(byte[]? name = null, byte[]? attribute = null)
    {
        var span = Concat(
            Message(1, Enumerable.Range(1, 16).Select(i => (byte)i).ToArray()),
            Message(2, [9, 9, 9, 9, 9, 9, 9, 9]),
            Message(4, [7, 7, 7, 7, 7, 7, 7, 7]),
            Message(5, name ?? Encoding.UTF8.GetBytes("checkout")),
            Varint(6, 2),
            Fixed64(7, 1_000),
            Fixed64(8, 2_000),
            Message(9, Str(1, "list"), Message(2, Message(5, Message(1, Str(1, "x")), Message(1, Varint(3, 5)), Message(1)))),
            Message(9, Str(1, "map"), Message(2, Message(6, Message(1, Str(1, "k"), Message(2, Fixed64(4, BitConverter.DoubleToUInt64Bits(-0.25))))))),
            Message(9, Str(1, "deep"), Message(2, attribute ?? Message(7, [0xAB]))),
            Message(13, Message(1, new byte[16]), Message(2, new byte[8])),
            Message(15, Str(2, "failed"), Varint(3, 2)));
        return Message(1, Concat(
            Message(1, Message(1, Str(1, "service.name"), Message(2, Str(1, "svc")))),
            Message(2, Message(1, Str(1, "scope"), Str(2, "1.0")), Message(2, span))));
    }

    private static byte[] MetricRequest(byte[] extraHistogramField) => Message(1, Concat(
        Message(1, Message(1, Str(1, "service.name"), Message(2, Str(1, "svc")))),
        Message(2, Message(1, Str(1, "meter")), Message(2, Str(1, "h"), Str(3, "ms"),
            Message(9, Varint(2, 2), Message(1, Fixed64(3, 5), Fixed64(4, 3), Fixed64(5, BitConverter.DoubleToUInt64Bits(1.5)), extraHistogramField))))));

    // AnyValue content nested depth arrays deep around a string.
    private static byte[] Nested(int depth)
    {
        var value = Str(1, "bottom");
        for (var i = 0; i < depth; i++) value = Message(5, Message(1, value));
        return value;
    }

    private static byte[] Concat(params byte[][] parts) => [.. parts.SelectMany(p => p)];

    private static byte[] Tag(int field, WireType wire) => VarintBytes(((ulong)field << 3) | (ulong)wire);

    private static byte[] Varint(int field, ulong value) => [.. Tag(field, WireType.Varint), .. VarintBytes(value)];

    private static byte[] Fixed64(int field, ulong value) => [.. Tag(field, WireType.Fixed64), .. Fixed64Bits(value)];

    private static byte[] Fixed64Bits(ulong value) => BitConverter.GetBytes(value);

    private static byte[] Fixed32(int field, uint value) => [.. Tag(field, WireType.Fixed32), .. BitConverter.GetBytes(value)];

    private static byte[] Str(int field, string value) => Message(field, Encoding.UTF8.GetBytes(value));

    // Lengths padded to four bytes, as the .NET exporter reserves them before it knows the size.
    private static byte[] Message(int field, params byte[][] content)
    {
        var body = Concat(content);
        var n = (uint)body.Length;
        return [.. Tag(field, Len), (byte)(n | 0x80), (byte)((n >> 7) | 0x80), (byte)((n >> 14) | 0x80), (byte)(n >> 21), .. body];
    }

    private static byte[] VarintBytes(ulong value)
    {
        var bytes = new List<byte>();
        do
        {
            var b = (byte)(value & 0x7F);
            value >>= 7;
            bytes.Add(value == 0 ? b : (byte)(b | 0x80));
        }
        while (value != 0);
        return [.. bytes];
    }
}
