using Confluent.Kafka;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// The baseline: the same number of same-sized messages produced straight to the broker the stack uses, with the
/// producer settings of the device topics, at the same concurrency. What the controller adds is the difference.
/// </summary>
internal static class RawKafkaBench
{
    public const string Topic = "tm.bench.raw";

    /// <summary>The measured produce; <paramref name="beforeMeasured"/> runs after the warm-up, right before the measured messages (a CPU snapshot).</summary>
    public static async Task<(double Seconds, long[] LatencyTicks)> RunAsync(string bootstrap, int count, int size, int concurrency, int warmup,
        Func<Task>? beforeMeasured, CancellationToken ct)
    {
        // Same settings as Hosting's KafkaSettings.Producer (idempotent, acks=all, 1 ms linger, large batches, no compression).
        var config = new ProducerConfig
        {
            BootstrapServers = bootstrap,
            ClientId = "tm-bench",
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 1,
            BatchSize = 1_000_000,
            CompressionType = CompressionType.None,
            MessageTimeoutMs = 30_000,
            DeliveryReportFields = "status",
            ReconnectBackoffMaxMs = 1000,
        };
        var errors = new List<string>();
        using var producer = new ProducerBuilder<string, byte[]>(config)
            .SetErrorHandler((_, e) =>
            {
                lock (errors) errors.Add(e.Reason);
            })
            .SetLogHandler((_, _) => { })
            .Build();

        var payload = new byte[size];
        Random.Shared.NextBytes(payload);
        // One key, so every message goes to one partition, as one storage object's writes do on a device topic.
        var message = new Message<string, byte[]> { Key = "bench", Value = payload };

        try
        {
            // The first messages create the topic (the development broker auto-creates) and open the connections.
            for (var i = 0; i < warmup; i++) await producer.ProduceAsync(Topic, message, ct);

            var latencies = new long[count];
            if (beforeMeasured is not null) await beforeMeasured();
            var seconds = await ClosedLoop.RunAsync(count, concurrency, latencies,
                (_, token) => producer.ProduceAsync(Topic, message, token), ct);
            producer.Flush(ct);
            return (seconds, latencies);
        }
        catch (ProduceException<string, byte[]> ex)
        {
            throw new CliException($"raw produce to {Topic} on {bootstrap} failed: {ex.Error.Reason}" +
                (errors.Count > 0 ? $" (client errors: {string.Join("; ", errors.Distinct().Take(3))})" : ""));
        }
        catch (KafkaException ex)
        {
            throw new CliException($"Kafka client error on {bootstrap}: {ex.Error.Reason}");
        }
    }
}
