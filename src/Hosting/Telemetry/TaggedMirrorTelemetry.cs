using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace TaggedMirror.Hosting.Telemetry;

/// <summary>One activity source and one meter per component, named <c>TaggedMirror.&lt;Component&gt;</c>.</summary>
public sealed class TaggedMirrorTelemetry : IDisposable
{
    public TaggedMirrorTelemetry(string component)
    {
        Name = "TaggedMirror." + component;
        Source = new ActivitySource(Name);
        Meter = new Meter(Name);
    }

    public string Name { get; }

    public ActivitySource Source { get; }

    public Meter Meter { get; }

    public void Dispose()
    {
        Source.Dispose();
        Meter.Dispose();
    }
}
