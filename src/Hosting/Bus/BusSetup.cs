using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace TaggedMirror.Hosting.Bus;

/// <summary>MassTransit over RabbitMQ between processes, or in memory inside one.</summary>
public static class BusSetup
{
    /// <summary>
    /// Adds the bus. <paramref name="endpointName"/> names this process's queue (cluster-prefixed);
    /// <paramref name="configureConsumers"/> registers consumers on it.
    /// </summary>
    public static IServiceCollection AddTaggedMirrorBus(
        this IServiceCollection services,
        TaggedMirrorOptions options,
        string endpointName,
        Action<IBusRegistrationConfigurator>? configureConsumers = null)
    {
        var queue = $"tm.{options.Cluster}.{endpointName}";
        services.AddMassTransit(x =>
        {
            configureConsumers?.Invoke(x);
            if (string.Equals(options.BusTransport, "InMemory", StringComparison.OrdinalIgnoreCase))
            {
                x.UsingInMemory((context, cfg) =>
                {
                    if (configureConsumers is null) return;
                    cfg.ReceiveEndpoint(queue, e => e.ConfigureConsumers(context));
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
                if (configureConsumers is null) return;
                cfg.ReceiveEndpoint(queue, e =>
                {
                    // A queue whose process is gone for good (test clusters, renamed hosts) removes itself.
                    e.QueueExpiration = TimeSpan.FromHours(1);
                    e.ConfigureConsumers(context);
                });
            });
        });
        return services;
    }
}
