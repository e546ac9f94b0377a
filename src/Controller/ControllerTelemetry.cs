using System.Diagnostics;
using System.Diagnostics.Metrics;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller;

/// <summary>
/// The controller's spans and meters (source and meter <c>TaggedMirror.Controller</c>). Instruments are
/// created once; observable gauges read state the controller keeps anyway (the catalog in memory, device lag
/// sampled by <see cref="Status.DeviceLagMonitor"/>), so an export never touches PostgreSQL or Kafka.
/// </summary>
internal sealed class ControllerTelemetry
{

    // Latency buckets for writes that take from well under a millisecond to seconds (a lagging device).
    private static readonly double[] LatencyBuckets =
        [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1, 2, 5, 10];

    public ControllerTelemetry(TaggedMirrorTelemetry telemetry, VolumeCatalog catalog)
    {
        Source = telemetry.Source;
        var meter = telemetry.Meter;
        WriteDuration = meter.CreateHistogram("tm.write.duration", "s",
            "Time from a write's arrival to its answer (log holds every copy, or every mirror applied it)",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        Writes = meter.CreateCounter<long>("tm.writes", "{write}", "Writes and appends accepted, per volume");
        WriteBytes = meter.CreateCounter<long>("tm.write.bytes", "By", "Bytes accepted, per volume");
        Resyncs = meter.CreateCounter<long>("tm.resyncs", "{resync}", "Ranges copied to a mirror that lacked them (resyncs and full-copy chunks)");
        ResyncBytes = meter.CreateCounter<long>("tm.resync.bytes", "By", "Bytes copied by resyncs and full copies");
        EventsPruned = meter.CreateCounter<long>("tm.events.pruned", "{event}",
            "Tag-table events pruned from the event store once reconciliation read them and they were older than the retention");
        AccessRefused = meter.CreateCounter<long>("tm.access.refused", "{request}",
            "Requests refused by access control, per reason (no_key, invalid_key, forbidden, rate_limited)");
        meter.CreateObservableGauge("tm.mirrors.degraded", () => DegradedMirrors(catalog), "{mirror}",
            "Mirrors of a volume that are not in sync (degraded, resyncing or needing a full copy)");
        _lag = meter.CreateObservableGauge("tm.device.lag", () => Lags.Select(kv => new Measurement<long>(kv.Value.Messages, new KeyValuePair<string, object?>(TelemetryAttributes.Device, kv.Key))),
            "{message}", "Device log end minus the offset the device has applied, summed over its partitions");
        meter.CreateObservableGauge("tm.device.unapplied_bytes", () => Lags.Select(kv => new Measurement<long>(kv.Value.UnappliedBytes, new KeyValuePair<string, object?>(TelemetryAttributes.Device, kv.Key))),
            "By", "Bytes this controller sent to a device that it has not applied yet (flow control)");
    }

    private readonly ObservableGauge<long> _lag;

    public Counter<long> AccessRefused { get; }

    public Counter<long> EventsPruned { get; }

    public ActivitySource Source { get; }

    /// <summary>True when a meter provider listens to the lag gauge (an exporter is configured): only then is it sampled.</summary>
    public bool LagObserved => _lag.Enabled;

    public Histogram<double> WriteDuration { get; }

    public Counter<long> Writes { get; }

    public Counter<long> WriteBytes { get; }

    public Counter<long> Resyncs { get; }

    public Counter<long> ResyncBytes { get; }

    /// <summary>Latest lag per device, replaced whole by the lag monitor.</summary>
    public IReadOnlyDictionary<string, DeviceLag> Lags { get; set; } = new Dictionary<string, DeviceLag>();

    private static IEnumerable<Measurement<int>> DegradedMirrors(VolumeCatalog catalog)
    {
        foreach (var v in catalog.All)
            yield return new Measurement<int>(v.Mirrors.Count(m => m.State != MirrorState.InSync), new KeyValuePair<string, object?>(TelemetryAttributes.Volume, v.Name));
    }
}

/// <summary>A device's lag: messages its log holds beyond what it applied, and bytes in flight to it.</summary>
internal readonly record struct DeviceLag(long Messages, long UnappliedBytes);
