using System.Text;
using Confluent.Kafka;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Transactions;

namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>Puts hand-made transactions on a device topic and reads what the agent put on its dead-letter topic.</summary>
internal static class DeviceTopic
{
    /// <summary>
    /// Produces a transaction with a correct CRC, so it passes every check a corrupt one fails: whatever is
    /// wrong with it is in its fields. Returns its offset.
    /// </summary>
    public static async Task<long> ProduceAsync(TestCluster cluster, string device, TransactionHeader fields, string objectId, byte[] data)
    {
        var obj = Encoding.UTF8.GetBytes(objectId);
        var header = new byte[TransactionHeader.Size];
        TransactionCodec.WriteHeader(header, fields, obj, default, data);
        return await ProduceRawAsync(cluster, device, new Message<byte[]?, byte[]?>
        {
            Value = data,
            Headers = new Headers { { HeaderNames.Header, header }, { HeaderNames.Object, obj } },
        });
    }

    public static async Task<long> ProduceRawAsync(TestCluster cluster, string device, Message<byte[]?, byte[]?> message)
    {
        using var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = cluster.Kafka.BootstrapServers }).Build();
        var result = await producer.ProduceAsync(Topics.Device(device), message);
        return result.Offset.Value;
    }

    /// <summary>
    /// Truncates the device's log under it, as retention does: puts one filler message (no transaction header) on
    /// partition 0, so the log surely ends past whatever the agent consumed, then deletes every record up to and
    /// including it. An agent that had not consumed up to here finds its next offset gone (a full copy).
    /// </summary>
    public static async Task TruncateAsync(TestCluster cluster, string device)
    {
        using var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = cluster.Kafka.BootstrapServers }).Build();
        var filler = await producer.ProduceAsync(new TopicPartition(Topics.Device(device), 0), new Message<byte[]?, byte[]?> { Value = [0] });
        cluster.Kafka.DeleteRecords(Topics.Device(device), 0, filler.Offset.Value + 1);
    }

    /// <summary>Deletes every record of partition 0 of the device's log, as retention does; returns the new log start.</summary>
    public static long DeleteAllRecords(TestCluster cluster, string device)
    {
        var end = LogEnd(cluster, device);
        cluster.Kafka.DeleteRecords(Topics.Device(device), 0, end);
        return end;
    }

    /// <summary>The end of partition 0 of the device's log now (its high watermark).</summary>
    public static long LogEnd(TestCluster cluster, string device)
    {
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = cluster.Kafka.BootstrapServers,
            GroupId = "log-end-" + Guid.NewGuid().ToString("N"),
        }).Build();
        return consumer.QueryWatermarkOffsets(new TopicPartition(Topics.Device(device), 0), TimeSpan.FromSeconds(10)).High.Value;
    }

    /// <summary>A consumer of partition 0 of the device's log from <paramref name="from"/>, committing nothing.</summary>
    private static IConsumer<byte[]?, byte[]?> Reader(TestCluster cluster, string device, long from, string group)
    {
        var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = cluster.Kafka.BootstrapServers,
            GroupId = group,
            EnableAutoCommit = false,
        }).Build();
        consumer.Assign(new TopicPartitionOffset(Topics.Device(device), 0, from));
        return consumer;
    }

    /// <summary>Bytes (values and headers) of the messages at offsets [<paramref name="from"/>, <paramref name="to"/>) of partition 0 of the device's log.</summary>
    public static long BytesBetween(TestCluster cluster, string device, long from, long to)
    {
        using var consumer = Reader(cluster, device, from, "log-bytes");
        long bytes = 0;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        for (var next = from; next < to;)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"read {device}'s log up to {next} of {to} in 60 s");
            if (consumer.Consume(TimeSpan.FromMilliseconds(500)) is not { } m) continue;
            bytes += (m.Message.Value?.Length ?? 0) + (m.Message.Key?.Length ?? 0) + m.Message.Headers.Sum(h => h.Key.Length + h.GetValueBytes().Length);
            next = m.Offset.Value + 1;
        }
        return bytes;
    }

    /// <summary>The offset of the copy of write <paramref name="tag"/> in partition 0 of the device's topic, from <paramref name="from"/> on.</summary>
    public static long OffsetOfCopy(TestCluster cluster, string device, string tag, long from)
    {
        using var consumer = Reader(cluster, device, from, "copy-finder");
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            var m = consumer.Consume(TimeSpan.FromMilliseconds(500));
            if (m?.Message.Headers.TryGetLastBytes(HeaderNames.Header, out var h) != true) continue;
            if (TransactionCodec.TryRead(h, Get(m, HeaderNames.Object), Get(m, HeaderNames.Tokens), m.Message.Value, out var f, out _)
                && f.Kind != TransactionKind.Barrier && f.Tag.ToString() == tag)
            {
                return m.Offset.Value;
            }
        }
        throw new TimeoutException($"no copy of {tag} in {Topics.Device(device)} from offset {from}");
    }

    /// <summary>The reasons on the first <paramref name="expected"/> messages of the device's dead-letter topic (every partition).</summary>
    public static List<string> DeadLetterReasons(TestCluster cluster, string device, int expected)
    {
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = cluster.Kafka.BootstrapServers,
            GroupId = "dlq-reader-" + Guid.NewGuid().ToString("N"),
            EnableAutoCommit = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
        }).Build();
        consumer.Subscribe(Topics.DeadLetter(device));
        var reasons = new List<string>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (reasons.Count < expected && DateTime.UtcNow < deadline)
        {
            var m = consumer.Consume(TimeSpan.FromMilliseconds(500));
            if (m?.Message.Headers.TryGetLastBytes(HeaderNames.DeadLetterReason, out var reason) == true)
                reasons.Add(Encoding.UTF8.GetString(reason));
        }
        return reasons;
    }

    private static byte[] Get(ConsumeResult<byte[]?, byte[]?> m, string key) =>
        m.Message.Headers.TryGetLastBytes(key, out var b) ? b : [];
}
