using System.Globalization;
using Confluent.Kafka;

namespace TaggedMirror.DevKafka.Tests;

/// <summary>
/// The mock keeps at most 5 MiB (or 100,000 message sets) per partition and drops the oldest.
/// Device agents detect that their next offset fell off the log through auto.offset.reset=error.
/// Observed with Confluent.Kafka 2.16 on librdkafka.redist 2.16 (as before with 1.9.3 on 2.0.2): Consume throws ConsumeException with
/// ErrorCode.Local_AutoOffsetReset (-140, not fatal, local), reason "fetch failed due to requested
/// offset not available on the broker: Broker: Offset out of range", and ConsumerRecord carrying the
/// requested offset. The partition then stays stopped (Consume returns null, Seek throws Local_State)
/// until it is assigned again; QueryWatermarkOffsets gives the first retained offset.
/// </summary>
public sealed class RetentionTests
{
    [Fact]
    public async Task reading_below_the_retained_log_fails_with_auto_offset_reset_and_reassign_at_low_watermark_recovers()
    {
        using var cluster = MockKafkaCluster.Start();
        var topic = KafkaClients.NewTopic("retention");
        cluster.CreateTopic(topic, partitions: 1, replicationFactor: 3);
        const int count = 80;
        using (var producer = KafkaClients.Producer(cluster.BootstrapServers))
        {
            // 80 x 128 KiB = 10 MiB, twice what a mock partition retains.
            var payload = new byte[128 * 1024];
            await Task.WhenAll(Enumerable.Range(0, count).Select(i => producer.ProduceAsync(
                topic,
                new Message<string, byte[]> { Key = i.ToString(CultureInfo.InvariantCulture), Value = payload })));
        }

        using var consumer = KafkaClients.Consumer(cluster.BootstrapServers);
        var partition = new TopicPartition(topic, 0);
        var watermarks = consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(10));
        Assert.Equal(count, watermarks.High.Value);
        Assert.InRange(watermarks.Low.Value, 1, count - 1);

        consumer.Assign(new TopicPartitionOffset(partition, 0));
        var error = Assert.Throws<ConsumeException>(() => ConsumeOne(consumer));
        Assert.Equal(ErrorCode.Local_AutoOffsetReset, error.Error.Code);
        Assert.False(error.Error.IsFatal);
        Assert.Equal(0, error.ConsumerRecord.TopicPartitionOffset.Offset.Value);
        Assert.Contains("Offset out of range", error.Error.Reason, StringComparison.Ordinal);

        // After the error the partition is stopped: Seek is refused; a new Assign restarts it.
        var seek = Assert.Throws<KafkaException>(() => consumer.Seek(new TopicPartitionOffset(partition, watermarks.Low)));
        Assert.Equal(ErrorCode.Local_State, seek.Error.Code);
        consumer.Assign(new TopicPartitionOffset(partition, watermarks.Low));
        var first = ConsumeOne(consumer);
        Assert.Equal(watermarks.Low, first.Offset);
        Assert.Equal(watermarks.Low.Value.ToString(CultureInfo.InvariantCulture), first.Message.Key);
    }

    [Fact]
    public async Task delete_records_moves_the_log_start_and_a_reader_below_it_fails_the_same_way()
    {
        using var cluster = MockKafkaCluster.Start();
        var topic = KafkaClients.NewTopic("delete-records");
        cluster.CreateTopic(topic, partitions: 1, replicationFactor: 3);
        using (var producer = KafkaClients.Producer(cluster.BootstrapServers))
        {
            for (var i = 0; i < 10; i++)
            {
                await producer.ProduceAsync(topic, new Message<string, byte[]> { Key = i.ToString(CultureInfo.InvariantCulture), Value = [1] });
            }
        }

        cluster.DeleteRecords(topic, 0, 6);

        using var consumer = KafkaClients.Consumer(cluster.BootstrapServers);
        var partition = new TopicPartition(topic, 0);
        var watermarks = consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(10));
        Assert.Equal(6, watermarks.Low.Value);
        Assert.Equal(10, watermarks.High.Value);
        consumer.Assign(new TopicPartitionOffset(partition, 3));
        var error = Assert.Throws<ConsumeException>(() => ConsumeOne(consumer));
        Assert.Equal(ErrorCode.Local_AutoOffsetReset, error.Error.Code);
        Assert.Equal(3, error.ConsumerRecord.TopicPartitionOffset.Offset.Value);
        consumer.Assign(new TopicPartitionOffset(partition, watermarks.Low));
        Assert.Equal("6", ConsumeOne(consumer).Message.Key);

        // Up to the end empties the log; beyond it, or on a partition that does not exist, is refused.
        cluster.DeleteRecords(topic, 0, 10);
        Assert.Equal(10, consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(10)).Low.Value);
        Assert.Equal(1, Assert.Throws<MockKafkaException>(() => cluster.DeleteRecords(topic, 0, 11)).ErrorCode); // OFFSET_OUT_OF_RANGE
        Assert.Equal(3, Assert.Throws<MockKafkaException>(() => cluster.DeleteRecords(topic, 1, 0)).ErrorCode); // UNKNOWN_TOPIC_OR_PART
    }

    private static ConsumeResult<string, byte[]> ConsumeOne(IConsumer<string, byte[]> consumer)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is not null)
            {
                return result;
            }
        }

        throw new TimeoutException("Nothing consumed within 10 s.");
    }
}
