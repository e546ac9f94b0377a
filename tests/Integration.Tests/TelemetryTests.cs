using Confluent.Kafka;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;
using TaggedMirror.Integration.Tests.Harness.Otlp;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Issue #4: what operators see. Every process exports over OTLP/HTTP (the standard environment variables)
/// to a receiver in this test that decodes the protobuf, and the span tree and metrics are checked as sent.
/// </summary>
public sealed class TelemetryTests
{
    private const int BlockSize = 4096;
    private const int ProducerKind = 4;
    private const int ServerKind = 2;
    private const int ConsumerKind = 5;

    [Fact]
    public async Task a_write_is_one_trace_through_every_mirror_and_a_resync_links_back_to_the_write_it_repairs()
    {
        await using var otlp = await OtlpReceiver.StartAsync();
        await using var cluster = await TestCluster.StartAsync(
            controllerSettings: new() { ["Controller__DeliveryTimeout"] = "00:00:02" },
            processEnvironment: p => otlp.ExporterEnvironment("tm-it-" + p));
        const long blocks = 512;
        await cluster.CreateVolumeAsync("traced", BlockSize, blocks);
        var rng = new Random(41);

        var healthy = new List<WriteResult>();
        for (var i = 0; i < 8; i++)
            healthy.Add(await cluster.WriteAsync("traced", rng.Next(0, (int)blocks - 4), RandomBytes(rng, 4 * BlockSize)));
        await cluster.WaitConvergedAsync("traced");

        foreach (var w in healthy)
        {
            await Eventually.TrueAsync(() => Task.FromResult(ReceivesOf(otlp, w.Tag).Count == 2), TimeSpan.FromSeconds(30),
                () => $"write {w.Tag}: expected a receive span on each device; have {Describe(otlp, w.Tag)}");
            AssertWriteTrace(otlp, w.Tag);
        }
        // The acknowledgement path over the bus is traced by MassTransit's own source, PostgreSQL by Npgsql's.
        await Eventually.TrueAsync(
            () => Task.FromResult(otlp.Spans.Any(s => s.ScopeName == "MassTransit" && s.ServiceName == "tm-it-agent-d0")
                && otlp.Spans.Any(s => s.ScopeName == "MassTransit" && s.ServiceName == "tm-it-controller")),
            TimeSpan.FromSeconds(30), () => "no MassTransit spans from both an agent and the controller");

        // d1's log becomes undeliverable: the volume runs degraded; when it returns, reconciliation resyncs.
        cluster.Kafka.SetBrokerDown(cluster.BrokerOf("d1"));
        var missed = new List<WriteResult>();
        for (var i = 0; i < 5; i++)
            missed.Add(await cluster.WriteAsync("traced", rng.Next(0, (int)blocks - 4), RandomBytes(rng, 4 * BlockSize)));
        Assert.Equal("Degraded", await cluster.MirrorStateAsync("traced", "d1"));
        await Eventually.TrueAsync(() => Task.FromResult(Latest(otlp, "tm.mirrors.degraded", "tm.volume", "traced") == 1), TimeSpan.FromSeconds(30),
            () => $"tm.mirrors.degraded for traced: {Latest(otlp, "tm.mirrors.degraded", "tm.volume", "traced")}, expected 1");
        cluster.Kafka.SetBrokerUp(cluster.BrokerOf("d1"));
        await cluster.WaitConvergedAsync("traced");

        var resyncs = await cluster.ResyncsAsync("traced");
        Assert.NotEmpty(resyncs);
        Assert.All(resyncs, r => Assert.NotNull(r.Tag)); // each repairs missed writes; no full copy here
        Assert.Equal(missed.Select(w => w.Tag).Order(), resyncs.SelectMany(r => r.CompletedTags).Order());
        foreach (var w in missed)
        {
            await Eventually.TrueAsync(() => Task.FromResult(RepairReceive(otlp, w) is not null), TimeSpan.FromSeconds(30),
                () => $"resync of {w.Tag}: no repair received on d1 in the trace; have {DescribeResync(otlp, w.Tag)}");
            AssertResyncTrace(otlp, w);
        }
        await Eventually.TrueAsync(() => Task.FromResult(Latest(otlp, "tm.mirrors.degraded", "tm.volume", "traced") == 0), TimeSpan.FromSeconds(30),
            () => $"tm.mirrors.degraded for traced: {Latest(otlp, "tm.mirrors.degraded", "tm.volume", "traced")}, expected 0");
        await Eventually.TrueAsync(() => Task.FromResult(Latest(otlp, "tm.resyncs", "tm.volume", "traced") == resyncs.Count), TimeSpan.FromSeconds(30),
            () => $"tm.resyncs for traced: {Latest(otlp, "tm.resyncs", "tm.volume", "traced")}, expected {resyncs.Count}");
        // PostgreSQL work is traced inside operations only: the polling loops do not flood the viewer with roots.
        Assert.DoesNotContain(otlp.Spans, s => s.ScopeName == "Npgsql" && s.ParentSpanId is null && !s.Name.StartsWith("CONNECT", StringComparison.Ordinal));
        var copied = await cluster.ScalarAsync($"SELECT coalesce(sum(bytes), 0)::bigint FROM {cluster.Schema}.resyncs WHERE volume = 'traced'");
        Assert.Equal(copied, Latest(otlp, "tm.resync.bytes", "tm.volume", "traced"));
        Assert.Empty(otlp.DecodeErrors);
    }

    [Fact]
    public async Task metrics_show_writes_the_live_tag_table_and_device_lag_moving_as_a_device_stops_and_returns()
    {
        await using var otlp = await OtlpReceiver.StartAsync();
        await using var cluster = await TestCluster.StartAsync(processEnvironment: p => otlp.ExporterEnvironment("tm-it-" + p));
        const long blocks = 1024;
        await cluster.CreateVolumeAsync("metered", BlockSize, blocks);
        var rng = new Random(43);
        long bytes = 0;
        for (var i = 0; i < 20; i++)
        {
            var data = RandomBytes(rng, rng.Next(1, 5) * BlockSize);
            await cluster.WriteAsync("metered", rng.Next(0, (int)blocks - 4), data);
            bytes += data.Length;
        }
        await cluster.WaitConvergedAsync("metered");
        await Eventually.TrueAsync(() => Task.FromResult(Latest(otlp, "tm.writes", "tm.volume", "metered") == 20), TimeSpan.FromSeconds(30),
            () => $"tm.writes for metered: {Latest(otlp, "tm.writes", "tm.volume", "metered")}, expected 20");
        Assert.Equal(bytes, Latest(otlp, "tm.write.bytes", "tm.volume", "metered"));
        var latency = LatestPoint(otlp, "tm.write.duration", "tm.volume", "metered")!;
        Assert.Equal(MetricPointKind.Histogram, latency.Kind);
        Assert.Equal(20ul, latency.Count);
        Assert.True(latency.Value > 0);
        await WaitMetricAsync(otlp, "tm.tagtable.live_entries", "d0", v => v == 0, "d0's live tag table to drain");

        // d1 stops: its log runs ahead of it, and d0's entries stay live because their tokens cannot come back
        // until every mirror applied the write.
        await cluster.Agent("d1").StopAsync();
        const int whileStopped = 15;
        for (var i = 0; i < whileStopped; i++)
            await cluster.WriteAsync("metered", rng.Next(0, (int)blocks - 4), RandomBytes(rng, BlockSize));
        await WaitMetricAsync(otlp, "tm.device.lag", "d1", v => v >= whileStopped, $"d1's lag to reach {whileStopped} messages");
        await WaitMetricAsync(otlp, "tm.tagtable.live_entries", "d0", v => v >= whileStopped, $"d0's live entries to reach {whileStopped}");
        // d0 keeps applying: its lag comes back down (barriers keep arriving, so not necessarily to 0) while
        // d1's stays up. Both in the same export, waited for: one sample of a busy machine may catch d0 mid-batch.
        await Eventually.TrueAsync(
            () => Task.FromResult(Latest(otlp, "tm.device.lag", "tm.device", "d0") < whileStopped && Latest(otlp, "tm.device.lag", "tm.device", "d1") >= whileStopped),
            TimeSpan.FromSeconds(45),
            () => $"expected d0's lag below {whileStopped} and d1's at least that; d0: {Series(otlp, "tm.device.lag", "d0")}; d1: {Series(otlp, "tm.device.lag", "d1")}");

        await cluster.StartAgentAsync("d1");
        await WaitMetricAsync(otlp, "tm.device.lag", "d1", v => v == 0, "d1's lag to return to 0");
        await WaitMetricAsync(otlp, "tm.tagtable.live_entries", "d0", v => v == 0, "d0's live tag table to drain");
        await WaitMetricAsync(otlp, "tm.tagtable.live_entries", "d1", v => v == 0, "d1's live tag table to drain");

        // A transaction that cannot be accepted is counted as dead-lettered.
        using (var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = cluster.Kafka.BootstrapServers }).Build())
            await producer.ProduceAsync("tm.device.d0", new Message<byte[]?, byte[]?> { Value = RandomBytes(rng, 100) });
        await WaitMetricAsync(otlp, "tm.deadlettered", "d0", v => v == 1, "one dead-lettered transaction on d0");
        Assert.Empty(otlp.DecodeErrors);
    }

    /// <summary>request → one produce per mirror → on each device a receive (child) and consume/apply/record (linked).</summary>
    private static void AssertWriteTrace(OtlpReceiver otlp, string tag)
    {
        var spans = otlp.Spans;
        var produces = Produces(spans, tag).Where(p => Equals(p.Attributes.GetValueOrDefault("tm.kind"), "write")).ToList();
        Assert.Equal(["tm.device.d0", "tm.device.d1"], produces.Select(p => (string)p.Attributes["messaging.destination.name"]!).Order());
        var request = Assert.Single(spans, s => s.SpanId == produces[0].ParentSpanId);
        Assert.Equal(("volume write", ServerKind, "tm-it-controller"), (request.Name, request.Kind, request.ServiceName));
        Assert.Equal(tag, request.Attributes["tm.tag"]);
        Assert.Equal("traced", request.Attributes["tm.volume"]);
        foreach (var p in produces)
        {
            Assert.Equal((request.TraceId, request.SpanId, ProducerKind), (p.TraceId, p.ParentSpanId, p.Kind));
            Assert.Equal("kafka", p.Attributes["messaging.system"]);
            Assert.Equal("0", p.Attributes["messaging.destination.partition.id"]);
            Assert.IsType<long>(p.Attributes["messaging.kafka.offset"]);
            var device = ((string)p.Attributes["messaging.destination.name"]!)["tm.device.".Length..];

            // The trace id crossed Kafka: the device's receive span is a child of this copy's produce span.
            var receive = Assert.Single(spans, s => s.ParentSpanId == p.SpanId && s.Name.StartsWith("receive ", StringComparison.Ordinal));
            Assert.Equal((p.TraceId, ConsumerKind, "tm-it-agent-" + device), (receive.TraceId, receive.Kind, receive.ServiceName));
            Assert.Equal(p.Attributes["messaging.kafka.offset"], receive.Attributes["messaging.kafka.offset"]);

            var consume = Assert.Single(spans, s => s.Name == "consume tm.device." + device && LinksTo(s, p));
            Assert.Equal(ConsumerKind, consume.Kind);
            Assert.Contains(receive.Links, l => l.SpanId == consume.SpanId);
            var apply = Assert.Single(spans, s => s.Name == "apply" && s.ParentSpanId == consume.SpanId);
            var record = Assert.Single(spans, s => s.Name == "record" && s.ParentSpanId == consume.SpanId);
            Assert.True(LinksTo(apply, p) && LinksTo(record, p), "apply and record link to the produce span");
            Assert.Contains(spans, s => s.ScopeName == "Npgsql" && s.ParentSpanId == record.SpanId);
        }
    }

    /// <summary>reconcile (linked to the write) → bus → resync (linked to the write) → copy range → repair produce → receive on the target.</summary>
    /// <summary>
    /// The resync that repaired <paramref name="w"/> (one span per volume and target, coalescing what that mirror
    /// missed) links to the write; a copy of a range holding the write's blocks is its child, the repair it sent a
    /// child of that, and d1 received the repair.
    /// </summary>
    private static void AssertResyncTrace(OtlpReceiver otlp, WriteResult w)
    {
        var spans = otlp.Spans;
        var write = Assert.Single(Produces(spans, w.Tag), p => (string)p.Attributes["messaging.destination.name"]! == "tm.device.d0");
        var resync = Assert.Single(spans, s => s.Name == "resync" && ResyncCovers(s, w.Tag));
        Assert.True(LinksTo(resync, write), $"the resync of {w.Tag} links to the write's trace {write.TraceId}");
        Assert.NotEqual(write.TraceId, resync.TraceId);
        var decision = Assert.Single(spans, s => s.Name == "reconcile resync-requested" && Equals(s.Attributes.GetValueOrDefault("tm.tag"), w.Tag));
        Assert.True(LinksTo(decision, write), "reconciliation's decision links to the write");
        // The batch of requests is consumed in the trace of one of its decisions (carried over the bus by MassTransit).
        Assert.Contains(spans, s => s.Name == "reconcile resync-requested" && s.TraceId == resync.TraceId && ResyncCovers(resync, (string)s.Attributes["tm.tag"]!));
        var copy = Assert.Single(spans, s => s.Name == "copy range" && Under(spans, s, resync) && Holds(s, w));
        Assert.Equal(("d0", "d1"), ((string)copy.Attributes["tm.resync.source"]!, (string)copy.Attributes["tm.resync.target"]!));
        var repair = Assert.Single(spans, s => s.ParentSpanId == copy.SpanId && s.Kind == ProducerKind);
        Assert.Equal(("tm.device.d1", "repair"), ((string)repair.Attributes["messaging.destination.name"]!, (string)repair.Attributes["tm.kind"]!));
        Assert.NotNull(RepairReceive(otlp, w));
    }

    private static bool ResyncCovers(ReceivedSpan resync, string tag) =>
        resync.Attributes.GetValueOrDefault("tm.resync.tags") is string tags && tags.Split(',').Contains(tag);

    private static bool Holds(ReceivedSpan copy, WriteResult w)
    {
        var first = Convert.ToInt64(copy.Attributes["tm.first_block"], System.Globalization.CultureInfo.InvariantCulture);
        var blocks = Convert.ToInt64(copy.Attributes["tm.blocks"], System.Globalization.CultureInfo.InvariantCulture);
        return first <= w.FirstBlock && w.FirstBlock + w.Blocks <= first + blocks;
    }

    /// <summary>
    /// A range's copy is a child of its resync, or, copied in a batch with other small ranges, of the batch's
    /// "copy ranges" span, itself a child of the resync.
    /// </summary>
    private static bool Under(IReadOnlyCollection<ReceivedSpan> spans, ReceivedSpan copy, ReceivedSpan resync) =>
        copy.ParentSpanId == resync.SpanId
        || spans.Any(b => b.SpanId == copy.ParentSpanId && b.Name == "copy ranges" && b.ParentSpanId == resync.SpanId);

    private static ReceivedSpan? RepairReceive(OtlpReceiver otlp, WriteResult w)
    {
        var spans = otlp.Spans;
        var resync = spans.FirstOrDefault(s => s.Name == "resync" && ResyncCovers(s, w.Tag));
        if (resync is null) return null;
        var copy = spans.FirstOrDefault(s => s.Name == "copy range" && Under(spans, s, resync) && Holds(s, w));
        var repair = copy is null ? null : spans.FirstOrDefault(s => s.ParentSpanId == copy.SpanId && s.Kind == ProducerKind);
        return repair is null ? null : spans.FirstOrDefault(s => s.ParentSpanId == repair.SpanId && s.ServiceName == "tm-it-agent-d1");
    }

    private static List<ReceivedSpan> Produces(IEnumerable<ReceivedSpan> spans, string tag) =>
        [.. spans.Where(s => s.Kind == ProducerKind && Equals(s.Attributes.GetValueOrDefault("tm.tag"), tag)
            && Equals(s.Attributes.GetValueOrDefault("messaging.system"), "kafka"))];

    private static List<ReceivedSpan> ReceivesOf(OtlpReceiver otlp, string tag)
    {
        var spans = otlp.Spans;
        var produced = Produces(spans, tag).Select(p => p.SpanId).ToHashSet(StringComparer.Ordinal);
        return [.. spans.Where(s => s.Kind == ConsumerKind && s.ParentSpanId is { } parent && produced.Contains(parent))];
    }

    private static bool LinksTo(ReceivedSpan s, ReceivedSpan target) =>
        s.Links.Any(l => l.TraceId == target.TraceId && l.SpanId == target.SpanId);

    private static string Describe(OtlpReceiver otlp, string tag) =>
        string.Join("; ", Produces(otlp.Spans, tag).Select(p => $"{p.Name} {p.SpanId}")) + $"; receives {ReceivesOf(otlp, tag).Count}; spans {otlp.Spans.Count}: "
        + string.Join(", ", otlp.Spans.GroupBy(s => $"{s.ServiceName}/{s.ScopeName}/{s.Name}").Select(g => $"{g.Key}×{g.Count()}"));

    private static string DescribeResync(OtlpReceiver otlp, string tag) =>
        string.Join("; ", otlp.Spans.Where(s => Equals(s.Attributes.GetValueOrDefault("tm.tag"), tag) || ResyncCovers(s, tag)).Select(s => $"{s.ServiceName}/{s.Name} {s.TraceId}/{s.SpanId}<-{s.ParentSpanId}"));

    private static ReceivedMetricPoint? LatestPoint(OtlpReceiver otlp, string metric, string key, string value) =>
        otlp.MetricPoints.Where(p => p.MetricName == metric && Equals(p.Attributes.GetValueOrDefault(key), value)).MaxBy(p => p.TimeUnixNano);

    /// <summary>The newest value of a metric for one attribute value, summed over its other attributes' series.</summary>
    private static double? Latest(OtlpReceiver otlp, string metric, string key, string value)
    {
        var points = otlp.MetricPoints.Where(p => p.MetricName == metric && Equals(p.Attributes.GetValueOrDefault(key), value)).ToList();
        if (points.Count == 0) return null;
        return points
            .GroupBy(p => string.Join(",", p.Attributes.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => $"{a.Key}={a.Value}")), StringComparer.Ordinal)
            .Sum(series => series.MaxBy(p => p.TimeUnixNano)!.Value);
    }

    private static string Series(OtlpReceiver otlp, string metric, string device) =>
        string.Join(" ", otlp.MetricPoints.Where(p => p.MetricName == metric && Equals(p.Attributes.GetValueOrDefault("tm.device"), device))
            .OrderBy(p => p.TimeUnixNano).Select(p => $"{p.TimeUnixNano / 1_000_000 % 100_000}ms:{p.Value}"));

    private static Task WaitMetricAsync(OtlpReceiver otlp, string metric, string device, Func<double, bool> expected, string what) =>
        Eventually.TrueAsync(() => Task.FromResult(Latest(otlp, metric, "tm.device", device) is { } v && expected(v)), TimeSpan.FromSeconds(45),
            () => $"waited for {what}: {metric} for {device} is {Latest(otlp, metric, "tm.device", device)?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "not reported"}");

    private static byte[] RandomBytes(Random rng, int length)
    {
        var b = new byte[length];
        rng.NextBytes(b);
        return b;
    }
}
