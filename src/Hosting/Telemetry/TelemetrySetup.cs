using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace TaggedMirror.Hosting.Telemetry;

/// <summary>
/// Builds the tracer and meter providers directly (the hosting extension package is not obtainable here).
/// Exports over OTLP only when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set; otherwise nothing is exported and
/// no provider is built, so the data path pays only for activities nobody listens to.
/// </summary>
public sealed class TelemetrySetup : IDisposable
{
    private readonly TracerProvider? _tracer;
    private readonly MeterProvider? _meter;

    public TelemetrySetup(string serviceName, IEnumerable<string> sources)
    {
        if (string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT")))
            return;
        var names = sources.ToArray();
        var service = Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME") is { Length: > 0 } s ? s : serviceName;
        var resource = ResourceBuilder.CreateDefault().AddService(service);
        _tracer = Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(resource)
            .AddSource(names)
            // ASP.NET Core starts an activity for every request whatever happens (its logging scopes use it);
            // unless it is sampled too, every span under it, the write's request span first, is dropped.
            .AddSource("Npgsql", "MassTransit", "Microsoft.AspNetCore")
            .AddOtlpExporter()
            .Build();
        _meter = Sdk.CreateMeterProviderBuilder()
            .SetResourceBuilder(resource)
            .AddMeter(names)
            .AddOtlpExporter()
            .Build();
    }

    public bool Exporting => _tracer is not null;

    public void Dispose()
    {
        _tracer?.Dispose();
        _meter?.Dispose();
    }
}
