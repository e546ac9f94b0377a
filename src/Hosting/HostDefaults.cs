using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Hosting.Health;
using TaggedMirror.Hosting.Telemetry;
using TaggedMirror.KafkaNative;

namespace TaggedMirror.Hosting;

/// <summary>Host setup shared by the controller and the device agents.</summary>
public static class HostDefaults
{
    /// <summary>
    /// Binds <see cref="TaggedMirrorOptions"/>, registers the PostgreSQL data source, the component's
    /// telemetry with OpenTelemetry (when an OTLP endpoint is configured) and the health checks, and binds the
    /// Kafka clients to librdkafka.redist's library (first: no client may exist before). Returns the options for
    /// the caller's own wiring; the bus (<see cref="Bus.BusSetup"/>) adds its own health check.
    /// </summary>
    public static TaggedMirrorOptions AddTaggedMirrorDefaults(this WebApplicationBuilder builder, string component)
    {
        Librdkafka.Install();
        var options = new TaggedMirrorOptions();
        builder.Configuration.GetSection(TaggedMirrorOptions.Section).Bind(options);
        options.Validate();
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(_ => PostgresDataSource.Create(options.Postgres, component));
        var telemetry = new TaggedMirrorTelemetry(component);
        builder.Services.AddSingleton(telemetry);
        builder.Services.AddTaggedMirrorTelemetry(builder.Configuration, "taggedmirror-" + component.ToLowerInvariant(), telemetry);
        builder.Services.AddTaggedMirrorHealth();
        return options;
    }

    /// <summary><c>GET /diag/process</c>: pid, peak memory and CPU time so far, read by the benchmarks.</summary>
    public static IEndpointRouteBuilder MapProcessDiagnostics(this IEndpointRouteBuilder app)
    {
        app.MapGet("/diag/process", () =>
        {
            using var p = Process.GetCurrentProcess();
            return Results.Json(new ProcessDiagnostics(Environment.ProcessId, p.PeakWorkingSet64, p.WorkingSet64, GC.GetTotalAllocatedBytes(),
                p.TotalProcessorTime.TotalSeconds, GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)));
        });
        return app;
    }
}
