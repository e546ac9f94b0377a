using Confluent.Kafka;

namespace TaggedMirror.Hosting.Kafka;

/// <summary>Client settings the project relies on, in one place.</summary>
public static class KafkaSettings
{
    /// <summary>
    /// Producer for device topics: idempotent with acks=all, so a retried send neither duplicates nor
    /// reorders one object's writes; a short linger batches concurrent writes without adding much latency.
    /// </summary>
    public static ProducerConfig Producer(string bootstrap, string clientId, TimeSpan deliveryTimeout) => new()
    {
        BootstrapServers = bootstrap,
        ClientId = clientId,
        EnableIdempotence = true,
        Acks = Acks.All,
        LingerMs = 1,
        MessageTimeoutMs = (int)deliveryTimeout.TotalMilliseconds,
        BatchSize = 1_000_000,
        CompressionType = CompressionType.None,
        // Delivery reports carry only what the write path needs.
        DeliveryReportFields = "status",
        // librdkafka backs off up to 10 s by default; a broker that comes back should be used within a second.
        ReconnectBackoffMaxMs = 1000,
    };

    /// <summary>
    /// Consumer for a device topic. Offsets live in PostgreSQL with the tag table, never in Kafka, and an
    /// offset that fell off the log is an error to report (<c>auto.offset.reset=error</c>), never a silent skip.
    /// </summary>
    public static ConsumerConfig DeviceConsumer(string bootstrap, string deviceId) => new()
    {
        BootstrapServers = bootstrap,
        ClientId = "tm-agent-" + deviceId,
        GroupId = "tm-agent-" + deviceId,
        EnableAutoCommit = false,
        EnableAutoOffsetStore = false,
        AutoOffsetReset = AutoOffsetReset.Error,
        EnablePartitionEof = false,
        FetchWaitMaxMs = 10,
        FetchMaxBytes = 16 * 1024 * 1024,
        MaxPartitionFetchBytes = 4 * 1024 * 1024,
        ReconnectBackoffMaxMs = 1000,
        // A fetch answered within FetchWaitMaxMs normally; a broker that went away and came back can leave a
        // request unanswered on a dead connection, and librdkafka's default 60 s wait would stall the device.
        SocketTimeoutMs = 10_000,
    };
}
