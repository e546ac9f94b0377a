using Confluent.Kafka;

namespace TaggedMirror.DevKafka.Tests;

/// <summary>Client settings the way the device agents use them: idempotent acks=all producers,
/// manually assigned consumers that never reset silently.</summary>
internal static class KafkaClients
{
    internal static IProducer<string, byte[]> Producer(string bootstrap, int messageTimeoutMs = 30_000) =>
        new ProducerBuilder<string, byte[]>(new ProducerConfig
        {
            BootstrapServers = bootstrap,
            EnableIdempotence = true,
            Acks = Acks.All,
            MessageTimeoutMs = messageTimeoutMs,
            LingerMs = 5,
            // The default backoff grows to 10 s, longer than the fault tests' message timeout.
            ReconnectBackoffMaxMs = 500,
        }).Build();

    internal static IConsumer<string, byte[]> Consumer(string bootstrap) =>
        new ConsumerBuilder<string, byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = "devkafka-tests-" + Guid.NewGuid().ToString("N"),
            EnableAutoCommit = false,
            AutoOffsetReset = AutoOffsetReset.Error,
        }).Build();

    internal static string NewTopic(string prefix) => $"{prefix}-{Guid.NewGuid():N}";

    /// <summary>A message keyed and filled with <paramref name="text"/>.</summary>
    internal static Message<string, byte[]> Value(string text) =>
        new() { Key = text, Value = System.Text.Encoding.UTF8.GetBytes(text) };
}
