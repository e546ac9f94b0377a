using Confluent.Kafka;

namespace TaggedMirror.Hosting.Kafka;

/// <summary>Client settings the project relies on, in one place.</summary>
public static class KafkaSettings
{
    /// <summary>
    /// The data path's longest wait between attempts to reach a broker that went away (librdkafka: 10 s): the wait
    /// until a device whose log came back is resynced starts with it. Each attempt at a broker still away costs one
    /// connect() that is refused at once.
    /// </summary>
    public const int ReconnectBackoffMaxMs = 200;

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
        ReconnectBackoffMaxMs = ReconnectBackoffMaxMs,
        // And a produce request that failed (its broker went away) is tried again within a quarter second, not after
        // librdkafka's growing wait of up to 1 s: the barrier that finds a returning device's log is one of them.
        RetryBackoffMaxMs = 250,
    };

    /// <summary>
    /// What a device-topic message carries beyond its data: the 48-byte transaction header, the object id, up to
    /// 1024 piggybacked tokens (8 KiB), the trace context headers, and Kafka's record and batch framing. Far
    /// more than those need, so a message whose data is at most <c>max - headroom</c> is never refused for size.
    /// </summary>
    public const int DeviceMessageHeadroomBytes = 256 * 1024;

    /// <summary>
    /// Kafka's default largest message (broker <c>message.max.bytes</c>, 1 MiB + 12). A device-topic message must
    /// fit it: the production topics are created without raising it.
    /// </summary>
    public const int BrokerMessageMaxBytes = 1_048_588;

    /// <summary>The device-topic producers' <c>message.max.bytes</c> when the largest data a message carries is <paramref name="maxDataBytes"/>.</summary>
    public static int DeviceMessageMaxBytes(int maxDataBytes) => checked(maxDataBytes + DeviceMessageHeadroomBytes);

    /// <summary>The most data one device-topic message may carry under a limit of <paramref name="messageMaxBytes"/>.</summary>
    public static int MaxDataBytes(int messageMaxBytes) => messageMaxBytes - DeviceMessageHeadroomBytes;

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
        ReconnectBackoffMaxMs = ReconnectBackoffMaxMs,
        // After a failed fetch (the broker went away) librdkafka waits 500 ms before fetching that partition again;
        // a device whose broker came back should see its log within a tenth of that.
        FetchErrorBackoffMs = 50,
        // A fetch answered within FetchWaitMaxMs normally; a broker that went away and came back can leave a
        // request unanswered on a dead connection, and librdkafka's default 60 s wait would stall the device.
        SocketTimeoutMs = 10_000,
    };
}
