using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Hosting.Health;

/// <summary>
/// <c>/health/live</c>: the process is up and serving HTTP (no dependency is asked, so a restart never follows an
/// outage of PostgreSQL). <c>/health/ready</c>: PostgreSQL answers a query, the bus is connected (MassTransit's
/// own check, named <c>bus</c>) and a Kafka broker answers a metadata request; 503 unless every check is
/// healthy. Both answer <see cref="HealthAnswer"/> as JSON.
/// </summary>
public static class HealthSetup
{
    public const string LivePath = "/health/live";

    public const string ReadyPath = "/health/ready";

    /// <summary>Tag of the checks <see cref="LivePath"/> runs.</summary>
    public const string LiveTag = "live";

    /// <summary>Tag of the checks <see cref="ReadyPath"/> runs; MassTransit tags its bus check so too.</summary>
    public const string ReadyTag = "ready";

    /// <summary>How long the PostgreSQL check may take before it counts as down.</summary>
    public static readonly TimeSpan PostgresTimeout = TimeSpan.FromSeconds(3);

    /// <summary>Registers the checks. The PostgreSQL check uses the <see cref="Npgsql.NpgsqlDataSource"/> registered in DI.</summary>
    public static IServiceCollection AddTaggedMirrorHealth(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<KafkaHealthCheck>();
        services.AddHealthChecks()
            .AddCheck("process", () => HealthCheckResult.Healthy(), tags: [LiveTag])
            .AddNpgSql(name: "postgresql", tags: [ReadyTag], timeout: PostgresTimeout)
            .AddCheck<KafkaHealthCheck>("kafka", tags: [ReadyTag], timeout: KafkaHealthCheck.Timeout + TimeSpan.FromSeconds(1));
        return services;
    }

    /// <summary>Maps <see cref="LivePath"/> and <see cref="ReadyPath"/>.</summary>
    public static IEndpointRouteBuilder MapTaggedMirrorHealth(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks(LivePath, new HealthCheckOptions { Predicate = r => r.Tags.Contains(LiveTag), ResponseWriter = WriteAsync });
        app.MapHealthChecks(ReadyPath, new HealthCheckOptions
        {
            Predicate = r => r.Tags.Contains(ReadyTag),
            ResponseWriter = WriteAsync,
            // MassTransit reports a receive endpoint that lost its connection and is reconnecting as Degraded:
            // not ready to take its share of the work all the same.
            ResultStatusCodes =
            {
                [HealthStatus.Healthy] = StatusCodes.Status200OK,
                [HealthStatus.Degraded] = StatusCodes.Status503ServiceUnavailable,
                [HealthStatus.Unhealthy] = StatusCodes.Status503ServiceUnavailable,
            },
        });
        return app;
    }

    private static Task WriteAsync(HttpContext context, HealthReport report)
    {
        var answer = new HealthAnswer(
            report.Status.ToString(),
            report.TotalDuration.TotalMilliseconds,
            [.. report.Entries.Select(e => new HealthCheckAnswer(
                e.Key, e.Value.Status.ToString(), e.Value.Description ?? e.Value.Exception?.Message, e.Value.Duration.TotalMilliseconds))]);
        return context.Response.WriteAsJsonAsync(answer, context.RequestAborted);
    }
}
