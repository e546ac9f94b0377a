using Confluent.Kafka;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace TaggedMirror.Hosting.Health;

/// <summary>
/// The log is reachable when a broker answers a metadata request within <see cref="Timeout"/>. The answer is
/// kept for <see cref="CacheFor"/>: probes from several orchestrators, or a tight probe period, cost the brokers
/// one request per interval, and concurrent probes share the one in flight.
/// </summary>
internal sealed class KafkaHealthCheck(TaggedMirrorOptions options, TimeProvider time) : IHealthCheck, IDisposable
{
    /// <summary>How long a metadata request may take before the log counts as unreachable.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    /// <summary>How long an answer is reused.</summary>
    public static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(5);

    private readonly Lock _lock = new();
    private IAdminClient? _admin;
    private Task<HealthCheckResult>? _last;
    private long _lastStarted;
    private bool _disposed;

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_last is null || (_last.IsCompleted && time.GetElapsedTime(_lastStarted) > CacheFor))
            {
                _lastStarted = time.GetTimestamp();
                // librdkafka's metadata call blocks its thread; one probe runs at a time, so _admin needs no lock.
                _last = Task.Run(Probe, CancellationToken.None);
            }
            return _last.WaitAsync(cancellationToken);
        }
    }

    private HealthCheckResult Probe()
    {
        try
        {
            _admin ??= new AdminClientBuilder(new AdminClientConfig
            {
                BootstrapServers = options.ResolveKafkaBootstrap(),
                ClientId = "tm-health",
                ReconnectBackoffMaxMs = 1000,
            })
                // The data path's own clients report broker trouble; this one would repeat it every reconnect.
                .SetLogHandler((_, _) => { })
                .Build();
            var metadata = _admin.GetMetadata(Timeout);
            return metadata.Brokers.Count > 0
                ? HealthCheckResult.Healthy($"{metadata.Brokers.Count} broker(s) answered")
                : HealthCheckResult.Unhealthy("metadata named no broker");
        }
        catch (KafkaException ex)
        {
            return HealthCheckResult.Unhealthy($"no metadata (waited up to {Timeout.TotalSeconds:0.#} s): {ex.Error.Reason}");
        }
        catch (InvalidOperationException ex)
        {
            return HealthCheckResult.Unhealthy(ex.Message);
        }
    }

    public void Dispose()
    {
        Task? last;
        lock (_lock)
        {
            _disposed = true;
            last = _last;
        }
        // A probe in flight still uses the client; it ends within Timeout.
        last?.Wait(Timeout + TimeSpan.FromSeconds(1));
        _admin?.Dispose();
    }
}
