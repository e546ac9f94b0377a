using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using TaggedMirror.Hosting.Telemetry;
using TaggedMirror.KafkaNative;

namespace TaggedMirror.Hosting;

/// <summary>Host setup shared by the controller and the device agents.</summary>
public static class HostDefaults
{
    /// <summary>
    /// Binds <see cref="TaggedMirrorOptions"/>, registers the PostgreSQL data source, the component's
    /// telemetry and the OTLP providers, and binds the Kafka clients to librdkafka.redist's library (first: no
    /// client may exist before). Returns the options for the caller's own wiring.
    /// </summary>
    public static TaggedMirrorOptions AddTaggedMirrorDefaults(this WebApplicationBuilder builder, string component)
    {
        Librdkafka.Install();
        var options = new TaggedMirrorOptions();
        builder.Configuration.GetSection(TaggedMirrorOptions.Section).Bind(options);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(_ => PostgresDataSource.Create(options.Postgres));
        var telemetry = new TaggedMirrorTelemetry(component);
        builder.Services.AddSingleton(telemetry);
        builder.Services.AddSingleton(_ => new TelemetrySetup("taggedmirror-" + component.ToLowerInvariant(), [telemetry.Name]));
        return options;
    }

    /// <summary><c>GET /diag/process</c>: pid and peak memory, read by the benchmark.</summary>
    public static IEndpointRouteBuilder MapProcessDiagnostics(this IEndpointRouteBuilder app)
    {
        app.MapGet("/diag/process", () =>
        {
            using var p = Process.GetCurrentProcess();
            return Results.Json(new ProcessDiagnostics(Environment.ProcessId, p.PeakWorkingSet64, p.WorkingSet64, GC.GetTotalAllocatedBytes()));
        });
        return app;
    }
}

/// <summary>What <c>/diag/process</c> answers.</summary>
public sealed record ProcessDiagnostics(int Pid, long PeakWorkingSetBytes, long WorkingSetBytes, long TotalAllocatedBytes);
