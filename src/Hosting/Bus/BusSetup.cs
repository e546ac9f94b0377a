using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using TaggedMirror.Hosting.Health;

namespace TaggedMirror.Hosting.Bus;

/// <summary>MassTransit over RabbitMQ between processes, or in memory inside one.</summary>
public static class BusSetup
{
    /// <summary>
    /// Adds the bus. <paramref name="configureConsumers"/> registers consumers; <paramref name="endpoints"/> names
    /// this process's queues (cluster-prefixed) and puts consumers on them. Consumers that wait on other messages
    /// (a resync waits for acknowledgements) need a queue of their own, or they can take every slot of the
    /// queue those messages arrive on.
    /// </summary>
    public static IServiceCollection AddTaggedMirrorBus(
        this IServiceCollection services,
        TaggedMirrorOptions options,
        Action<IBusRegistrationConfigurator>? configureConsumers = null,
        IReadOnlyDictionary<string, Action<IReceiveEndpointConfigurator, IBusRegistrationContext>>? endpoints = null)
    {
        services.AddMassTransit(x =>
        {
            // MassTransit reports usage to its vendor over the internet unless told not to; a storage
            // controller phones nowhere.
            x.DisableUsageTelemetry();
            // MassTransit registers its bus health check itself; /health/ready names it "bus".
            x.ConfigureHealthCheckOptions(h =>
            {
                h.Name = "bus";
                h.Tags.Add(HealthSetup.ReadyTag);
            });
            configureConsumers?.Invoke(x);
            if (string.Equals(options.BusTransport, "InMemory", StringComparison.OrdinalIgnoreCase))
            {
                x.UsingInMemory((context, cfg) =>
                {
                    foreach (var (name, configure) in endpoints ?? new Dictionary<string, Action<IReceiveEndpointConfigurator, IBusRegistrationContext>>())
                        cfg.ReceiveEndpoint($"tm.{options.Cluster}.{name}", e => configure(e, context));
                });
                return;
            }
            x.UsingRabbitMq((context, cfg) =>
            {
                cfg.Host(options.RabbitMqHost, options.RabbitMqPort, options.RabbitMqVirtualHost, h =>
                {
                    h.Username(options.RabbitMqUser);
                    h.Password(options.RabbitMqPassword);
                });
                cfg.MessageTopology.SetEntityNameFormatter(
                    new ClusterEntityNameFormatter(cfg.MessageTopology.EntityNameFormatter, options.Cluster));
                foreach (var (name, configure) in endpoints ?? new Dictionary<string, Action<IReceiveEndpointConfigurator, IBusRegistrationContext>>())
                {
                    cfg.ReceiveEndpoint($"tm.{options.Cluster}.{name}", e =>
                    {
                        // A queue whose process is gone for good (test clusters, renamed hosts) removes itself.
                        if (e is IRabbitMqReceiveEndpointConfigurator rabbit) rabbit.QueueExpiration = TimeSpan.FromHours(1);
                        configure(e, context);
                    });
                }
                if (endpoints is not { Count: > 0 })
                {
                    // MassTransit's bus health check watches receive endpoints only: a process that just sends (an
                    // agent) would report the bus ready with RabbitMQ gone. This endpoint consumes nothing; it lets
                    // the check see the connection, and leaves with it (auto-delete, not durable).
                    cfg.ReceiveEndpoint($"tm.{options.Cluster}.connection-{Guid.NewGuid():N}", e =>
                    {
                        e.ConfigureConsumeTopology = false;
                        if (e is IRabbitMqReceiveEndpointConfigurator rabbit)
                        {
                            rabbit.Durable = false;
                            rabbit.AutoDelete = true;
                        }
                    });
                }
            });
        });
        return services;
    }
}
