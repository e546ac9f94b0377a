namespace TaggedMirror.Integration.Tests.Harness.Otlp;

/// <summary>
/// Decodes OTLP <c>ExportTraceServiceRequest</c> and <c>ExportMetricsServiceRequest</c> bodies into flat records.
/// Field numbers follow opentelemetry-proto v1 (<c>trace/v1/trace.proto</c>, <c>metrics/v1/metrics.proto</c>,
/// <c>common/v1/common.proto</c>), as the .NET exporter's <c>ProtobufOtlp*FieldNumberConstants</c> also spell them.
/// A known field with an unexpected wire type is skipped like an unknown one, as protobuf parsers do.
/// </summary>
internal static class OtlpDecoder
{
    private const WireType Len = WireType.LengthDelimited;
    private const WireType Varint = WireType.Varint;
    private const WireType I64 = WireType.Fixed64;

    /// <summary>ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 }.</summary>
    public static List<ReceivedSpan> DecodeTraces(ReadOnlySpan<byte> request)
    {
        var spans = new List<ReceivedSpan>();
        var reader = new ProtoReader(request);
        while (reader.TryReadTag(out var field, out var wire))
        {
            if ((field, wire) == (1, Len)) ReadResourceSpans(reader.ReadLengthDelimited(), spans);
            else reader.Skip(field, wire);
        }
        return spans;
    }

    /// <summary>ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1 }.</summary>
    public static List<ReceivedMetricPoint> DecodeMetrics(ReadOnlySpan<byte> request)
    {
        var points = new List<ReceivedMetricPoint>();
        var reader = new ProtoReader(request);
        while (reader.TryReadTag(out var field, out var wire))
        {
            if ((field, wire) == (1, Len)) ReadResourceMetrics(reader.ReadLengthDelimited(), points);
            else reader.Skip(field, wire);
        }
        return points;
    }

    // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3 }
    private static void ReadResourceSpans(ReadOnlySpan<byte> data, List<ReceivedSpan> spans)
    {
        var service = ServiceName(data);
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            if ((field, wire) == (2, Len)) ReadScopeSpans(reader.ReadLengthDelimited(), service, spans);
            else reader.Skip(field, wire);
        }
    }

    // ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3 }
    private static void ReadScopeSpans(ReadOnlySpan<byte> data, string service, List<ReceivedSpan> spans)
    {
        var scope = ScopeName(data);
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            if ((field, wire) == (2, Len)) spans.Add(ReadSpan(reader.ReadLengthDelimited(), service, scope));
            else reader.Skip(field, wire);
        }
    }

    // Span { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4; string name = 5;
    //   SpanKind kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9;
    //   uint32 dropped_attributes_count = 10; repeated Event events = 11; uint32 dropped_events_count = 12;
    //   repeated Link links = 13; uint32 dropped_links_count = 14; Status status = 15; fixed32 flags = 16 }
    private static ReceivedSpan ReadSpan(ReadOnlySpan<byte> data, string service, string scope)
    {
        string traceId = "", spanId = "", name = "";
        string? parentSpanId = null;
        int kind = 0, statusCode = 0;
        ulong start = 0, end = 0;
        var attributes = new Dictionary<string, object?>();
        var links = new List<ReceivedLink>();
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, Len): traceId = Convert.ToHexStringLower(reader.ReadLengthDelimited()); break;
                case (2, Len): spanId = Convert.ToHexStringLower(reader.ReadLengthDelimited()); break;
                case (4, Len): parentSpanId = ParentId(reader.ReadLengthDelimited()); break;
                case (5, Len): name = reader.ReadString(); break;
                case (6, Varint): kind = (int)reader.ReadVarint(); break;
                case (7, I64): start = reader.ReadFixed64(); break;
                case (8, I64): end = reader.ReadFixed64(); break;
                case (9, Len): AddKeyValue(reader.ReadLengthDelimited(), attributes, 0); break;
                case (13, Len): links.Add(ReadLink(reader.ReadLengthDelimited())); break;
                case (15, Len): statusCode = ReadStatusCode(reader.ReadLengthDelimited()); break;
                default: reader.Skip(field, wire); break;
            }
        }
        return new ReceivedSpan(service, scope, traceId, spanId, parentSpanId, name, kind, start, end, attributes, links, statusCode);
    }

    // A root span leaves parent_span_id empty; all zeros is the invalid id, so no parent either.
    private static string? ParentId(ReadOnlySpan<byte> id) => id.ContainsAnyExcept((byte)0) ? Convert.ToHexStringLower(id) : null;

    // Link { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; repeated KeyValue attributes = 4;
    //   uint32 dropped_attributes_count = 5; fixed32 flags = 6 }
    private static ReceivedLink ReadLink(ReadOnlySpan<byte> data)
    {
        string traceId = "", spanId = "";
        var attributes = new Dictionary<string, object?>();
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, Len): traceId = Convert.ToHexStringLower(reader.ReadLengthDelimited()); break;
                case (2, Len): spanId = Convert.ToHexStringLower(reader.ReadLengthDelimited()); break;
                case (4, Len): AddKeyValue(reader.ReadLengthDelimited(), attributes, 0); break;
                default: reader.Skip(field, wire); break;
            }
        }
        return new ReceivedLink(traceId, spanId, attributes);
    }

    // Status { string message = 2; StatusCode code = 3 } (field 1 is reserved)
    private static int ReadStatusCode(ReadOnlySpan<byte> data)
    {
        var code = 0;
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            if ((field, wire) == (3, Varint)) code = (int)reader.ReadVarint();
            else reader.Skip(field, wire);
        }
        return code;
    }

    // ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; string schema_url = 3 }
    private static void ReadResourceMetrics(ReadOnlySpan<byte> data, List<ReceivedMetricPoint> points)
    {
        var service = ServiceName(data);
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            if ((field, wire) == (2, Len)) ReadScopeMetrics(reader.ReadLengthDelimited(), service, points);
            else reader.Skip(field, wire);
        }
    }

    // ScopeMetrics { InstrumentationScope scope = 1; repeated Metric metrics = 2; string schema_url = 3 }
    private static void ReadScopeMetrics(ReadOnlySpan<byte> data, string service, List<ReceivedMetricPoint> points)
    {
        var scope = ScopeName(data);
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            if ((field, wire) == (2, Len)) ReadMetric(reader.ReadLengthDelimited(), new MetricIdentity(service, scope), points);
            else reader.Skip(field, wire);
        }
    }

    // Metric { string name = 1; string description = 2; string unit = 3; oneof data { Gauge gauge = 5; Sum sum = 7;
    //   Histogram histogram = 9; ExponentialHistogram exponential_histogram = 10; Summary summary = 11 };
    //   repeated KeyValue metadata = 12 }. Exponential histograms and summaries are skipped.
    private static void ReadMetric(ReadOnlySpan<byte> data, MetricIdentity identity, List<ReceivedMetricPoint> points)
    {
        // Name and unit may follow the data points on the wire; read them in a pass of their own.
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, Len): identity = identity with { Name = reader.ReadString() }; break;
                case (3, Len): identity = identity with { Unit = reader.ReadString() }; break;
                default: reader.Skip(field, wire); break;
            }
        }
        reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (5, Len): ReadNumberPoints(reader.ReadLengthDelimited(), MetricPointKind.Gauge, identity, points); break;
                case (7, Len): ReadNumberPoints(reader.ReadLengthDelimited(), MetricPointKind.Sum, identity, points); break;
                case (9, Len): ReadHistogramPoints(reader.ReadLengthDelimited(), identity, points); break;
                default: reader.Skip(field, wire); break;
            }
        }
    }

    // Gauge { repeated NumberDataPoint data_points = 1 }
    // Sum { repeated NumberDataPoint data_points = 1; AggregationTemporality aggregation_temporality = 2; bool is_monotonic = 3 }
    private static void ReadNumberPoints(ReadOnlySpan<byte> data, MetricPointKind kind, MetricIdentity identity, List<ReceivedMetricPoint> points)
    {
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            if ((field, wire) == (1, Len)) points.Add(ReadNumberPoint(reader.ReadLengthDelimited(), kind, identity));
            else reader.Skip(field, wire);
        }
    }

    // NumberDataPoint { fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3; oneof value { double as_double = 4;
    //   sfixed64 as_int = 6 }; repeated Exemplar exemplars = 5; repeated KeyValue attributes = 7; uint32 flags = 8 }
    private static ReceivedMetricPoint ReadNumberPoint(ReadOnlySpan<byte> data, MetricPointKind kind, MetricIdentity identity)
    {
        double value = 0;
        ulong time = 0;
        var attributes = new Dictionary<string, object?>();
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (3, I64): time = reader.ReadFixed64(); break;
                case (4, I64): value = reader.ReadDouble(); break;
                case (6, I64): value = (long)reader.ReadFixed64(); break;
                case (7, Len): AddKeyValue(reader.ReadLengthDelimited(), attributes, 0); break;
                default: reader.Skip(field, wire); break;
            }
        }
        return new ReceivedMetricPoint(identity.Service, identity.Scope, identity.Name, identity.Unit, kind, attributes, value, 0, time);
    }

    // Histogram { repeated HistogramDataPoint data_points = 1; AggregationTemporality aggregation_temporality = 2 }
    private static void ReadHistogramPoints(ReadOnlySpan<byte> data, MetricIdentity identity, List<ReceivedMetricPoint> points)
    {
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            if ((field, wire) == (1, Len)) points.Add(ReadHistogramPoint(reader.ReadLengthDelimited(), identity));
            else reader.Skip(field, wire);
        }
    }

    // HistogramDataPoint { fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3; fixed64 count = 4;
    //   optional double sum = 5; repeated fixed64 bucket_counts = 6; repeated double explicit_bounds = 7;
    //   repeated Exemplar exemplars = 8; repeated KeyValue attributes = 9; uint32 flags = 10;
    //   optional double min = 11; optional double max = 12 }
    private static ReceivedMetricPoint ReadHistogramPoint(ReadOnlySpan<byte> data, MetricIdentity identity)
    {
        double sum = 0;
        double? min = null, max = null;
        ulong count = 0, time = 0;
        var buckets = new List<ulong>();
        var bounds = new List<double>();
        var attributes = new Dictionary<string, object?>();
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (3, I64): time = reader.ReadFixed64(); break;
                case (4, I64): count = reader.ReadFixed64(); break;
                case (5, I64): sum = reader.ReadDouble(); break;
                // Repeated scalars come packed (proto3's default) or one per tag; a parser must take both.
                case (6, Len): ReadPacked64(reader.ReadLengthDelimited(), b => buckets.Add(b)); break;
                case (6, I64): buckets.Add(reader.ReadFixed64()); break;
                case (7, Len): ReadPacked64(reader.ReadLengthDelimited(), b => bounds.Add(BitConverter.UInt64BitsToDouble(b))); break;
                case (7, I64): bounds.Add(reader.ReadDouble()); break;
                case (9, Len): AddKeyValue(reader.ReadLengthDelimited(), attributes, 0); break;
                case (11, I64): min = reader.ReadDouble(); break;
                case (12, I64): max = reader.ReadDouble(); break;
                default: reader.Skip(field, wire); break;
            }
        }
        return new ReceivedMetricPoint(identity.Service, identity.Scope, identity.Name, identity.Unit, MetricPointKind.Histogram, attributes, sum, count, time)
        {
            BucketCounts = buckets,
            ExplicitBounds = bounds,
            Min = min,
            Max = max,
        };
    }

    private static void ReadPacked64(ReadOnlySpan<byte> data, Action<ulong> add)
    {
        if (data.Length % 8 != 0) throw new InvalidDataException($"packed 64-bit field of {data.Length} bytes is not a multiple of 8");
        var reader = new ProtoReader(data);
        while (!reader.End) add(reader.ReadFixed64());
    }

    // The resource is read in a pass of its own because it may follow the data it describes on the wire.
    // Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2 }
    private static string ServiceName(ReadOnlySpan<byte> resourceContainer)
    {
        var service = "";
        var outer = new ProtoReader(resourceContainer);
        while (outer.TryReadTag(out var field, out var wire))
        {
            if ((field, wire) != (1, Len))
            {
                outer.Skip(field, wire);
                continue;
            }
            var attributes = new Dictionary<string, object?>();
            var reader = new ProtoReader(outer.ReadLengthDelimited());
            while (reader.TryReadTag(out var f, out var w))
            {
                if ((f, w) == (1, Len)) AddKeyValue(reader.ReadLengthDelimited(), attributes, 0);
                else reader.Skip(f, w);
            }
            if (attributes.TryGetValue("service.name", out var name) && name is string s) service = s;
        }
        return service;
    }

    // InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4 }
    private static string ScopeName(ReadOnlySpan<byte> scopeContainer)
    {
        var scope = "";
        var outer = new ProtoReader(scopeContainer);
        while (outer.TryReadTag(out var field, out var wire))
        {
            if ((field, wire) != (1, Len))
            {
                outer.Skip(field, wire);
                continue;
            }
            var reader = new ProtoReader(outer.ReadLengthDelimited());
            while (reader.TryReadTag(out var f, out var w))
            {
                if ((f, w) == (1, Len)) scope = reader.ReadString();
                else reader.Skip(f, w);
            }
        }
        return scope;
    }

    // KeyValue { string key = 1; AnyValue value = 2 }
    private static void AddKeyValue(ReadOnlySpan<byte> data, Dictionary<string, object?> into, int depth)
    {
        var key = "";
        object? value = null;
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, Len): key = reader.ReadString(); break;
                case (2, Len): value = ReadAnyValue(reader.ReadLengthDelimited(), depth + 1); break;
                default: reader.Skip(field, wire); break;
            }
        }
        into[key] = value;
    }

    // AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4;
    //   ArrayValue array_value = 5; KeyValueList kvlist_value = 6; bytes bytes_value = 7 } }; an empty AnyValue is null.
    // ArrayValue { repeated AnyValue values = 1 }, KeyValueList { repeated KeyValue values = 1 }
    private static object? ReadAnyValue(ReadOnlySpan<byte> data, int depth)
    {
        if (depth > ProtoReader.MaxDepth) throw new InvalidDataException($"attribute values nested deeper than {ProtoReader.MaxDepth}");
        object? value = null;
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, Len): value = reader.ReadString(); break;
                case (2, Varint): value = reader.ReadVarint() != 0; break;
                case (3, Varint): value = (long)reader.ReadVarint(); break;
                case (4, I64): value = reader.ReadDouble(); break;
                case (5, Len): value = ReadArray(reader.ReadLengthDelimited(), depth); break;
                case (6, Len): value = ReadKeyValueList(reader.ReadLengthDelimited(), depth); break;
                case (7, Len): value = reader.ReadLengthDelimited().ToArray(); break;
                default: reader.Skip(field, wire); break;
            }
        }
        return value;
    }

    private static object?[] ReadArray(ReadOnlySpan<byte> data, int depth)
    {
        var values = new List<object?>();
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            if ((field, wire) == (1, Len)) values.Add(ReadAnyValue(reader.ReadLengthDelimited(), depth + 1));
            else reader.Skip(field, wire);
        }
        return [.. values];
    }

    private static Dictionary<string, object?> ReadKeyValueList(ReadOnlySpan<byte> data, int depth)
    {
        var values = new Dictionary<string, object?>();
        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out var field, out var wire))
        {
            if ((field, wire) == (1, Len)) AddKeyValue(reader.ReadLengthDelimited(), values, depth + 1);
            else reader.Skip(field, wire);
        }
        return values;
    }

    private readonly record struct MetricIdentity(string Service, string Scope)
    {
        public string Name { get; init; } = "";

        public string Unit { get; init; } = "";
    }
}
