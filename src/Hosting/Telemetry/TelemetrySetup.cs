using System.Diagnostics;
using MassTransit.Logging;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace TaggedMirror.Hosting.Telemetry;

/// <summary>
/// OpenTelemetry through the hosting extension: the component's own source and meter, MassTransit's, Npgsql's,
/// ASP.NET Core and HttpClient, the runtime and the process, exported over OTLP. The exporter reads the standard
/// <c>OTEL_*</c> settings from configuration (environment variables included). Nothing is registered when
/// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is unset: no provider listens, so the data path pays only for activities
/// nobody samples.
/// </summary>
public static class TelemetrySetup
{
    /// <summary>The setting that switches export on.</summary>
    public const string EndpointSetting = "OTEL_EXPORTER_OTLP_ENDPOINT";

    /// <summary>Overrides the service name on every span and metric.</summary>
    public const string ServiceNameSetting = "OTEL_SERVICE_NAME";

    /// <summary>Registers the providers when an OTLP endpoint is configured; returns whether it did.</summary>
    public static bool AddTaggedMirrorTelemetry(
        this IServiceCollection services, IConfiguration configuration, string defaultServiceName, TaggedMirrorTelemetry telemetry)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(telemetry);
        if (string.IsNullOrWhiteSpace(configuration[EndpointSetting])) return false;
        // An explicit service name beats the SDK's own OTEL_SERVICE_NAME detector, so read that setting here.
        var serviceName = configuration[ServiceNameSetting] is { Length: > 0 } s ? s : defaultServiceName;
        services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(serviceName))
            .WithTracing(t => t
                .AddSource(telemetry.Name)
                .AddSource(DiagnosticHeaders.DefaultListenerName)
                .AddAspNetCoreInstrumentation(o => o.Filter = IsTracedRequest)
                // Like PostgreSQL commands (PostgresDataSource), outgoing calls are traced only inside an operation.
                .AddHttpClientInstrumentation(o => o.FilterHttpRequestMessage = _ => Activity.Current is not null)
                .AddNpgsql()
                // Spans are queued and sent by a background thread; a full queue drops spans (counted by the
                // SDK), it never makes a write wait.
                .AddOtlpExporter(o => o.ExportProcessorType = ExportProcessorType.Batch))
            .WithMetrics(m => m
                .AddMeter(telemetry.Name)
                .AddMeter(DiagnosticHeaders.DefaultListenerName)
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddProcessInstrumentation()
                .AddNpgsqlInstrumentation()
                .AddOtlpExporter());
        return true;
    }

    /// <summary>
    /// Requests that watch rather than act are not traced: probes and diagnostics, and status reads (the agent's
    /// <c>/status</c>, the controller's <c>/controller</c>, <c>GET /volumes</c> and <c>GET /volumes/{name}</c>),
    /// which orchestrators, <c>tm status --watch</c> and dashboards ask every few seconds; a root trace each would
    /// bury the writes. Their HTTP metrics are kept. Writes, appends, reads of blocks and volume creation are traced.
    /// </summary>
    private static bool IsTracedRequest(HttpContext context)
    {
        var path = context.Request.Path;
        if (path.StartsWithSegments("/health", StringComparison.OrdinalIgnoreCase)
            || path.StartsWithSegments("/diag", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        if (!HttpMethods.IsGet(context.Request.Method)) return true;
        if (path.StartsWithSegments("/status", StringComparison.OrdinalIgnoreCase)
            || path.StartsWithSegments("/controller", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        // GET /volumes and GET /volumes/{name} are status; GET /volumes/{name}/blocks/... is a read.
        return !(path.StartsWithSegments("/volumes", StringComparison.OrdinalIgnoreCase, out var rest)
            && rest.Value?.Trim('/').Contains('/', StringComparison.Ordinal) != true);
    }
}
