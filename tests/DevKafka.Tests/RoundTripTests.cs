using System.Globalization;
using System.Text;
using Confluent.Kafka;

namespace TaggedMirror.DevKafka.Tests;

public sealed class RoundTripTests
{
    [Fact]
    public async Task idempotent_producer_writes_1000_messages_that_a_consumer_reads_back_in_order_with_headers()
    {
        using var cluster = MockKafkaCluster.Start();
        var topic = KafkaClients.NewTopic("roundtrip");
        cluster.CreateTopic(topic, partitions: 1, replicationFactor: 3);
        const int count = 1000;

        using (var producer = KafkaClients.Producer(cluster.BootstrapServers))
        {
            var deliveries = await Task.WhenAll(Enumerable.Range(0, count).Select(i => producer.ProduceAsync(topic, Message(i))));
            Assert.All(deliveries, d => Assert.Equal(PersistenceStatus.Persisted, d.Status));
            Assert.Equal(Enumerable.Range(0, count).Select(i => (long)i), deliveries.Select(d => d.Offset.Value));
        }

        using var consumer = KafkaClients.Consumer(cluster.BootstrapServers);
        consumer.Assign(new TopicPartitionOffset(topic, 0, Offset.Beginning));
        var deadline = DateTime.UtcNow.AddSeconds(20);
        var next = 0;
        while (next < count && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null)
            {
                continue;
            }

            Assert.Equal(next, result.Offset.Value);
            var expected = Message(next);
            Assert.Equal(expected.Key, result.Message.Key);
            Assert.Equal(expected.Value, result.Message.Value);
            Assert.Equal(2, result.Message.Headers.Count);
            Assert.Equal(expected.Headers[0].GetValueBytes(), result.Message.Headers.GetLastBytes("seq"));
            Assert.Equal(expected.Headers[1].GetValueBytes(), result.Message.Headers.GetLastBytes("traceparent"));
            next++;
        }

        Assert.Equal(count, next);
    }

    [Fact]
    public void create_topic_twice_is_rejected_with_the_broker_error()
    {
        using var cluster = MockKafkaCluster.Start(brokers: 1);
        cluster.CreateTopic("twice", partitions: 2, replicationFactor: 1);
        var error = Assert.Throws<MockKafkaException>(() => cluster.CreateTopic("twice", partitions: 2, replicationFactor: 1));
        Assert.Equal((int)ErrorCode.TopicAlreadyExists, error.ErrorCode);
        Assert.Contains("TOPIC_ALREADY_EXISTS", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void broker_ids_outside_1_to_n_and_use_after_dispose_are_rejected()
    {
        var cluster = MockKafkaCluster.Start(brokers: 2);
        Assert.Equal(2, cluster.BootstrapServers.Split(',').Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => cluster.SetBrokerDown(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => cluster.SetBrokerUp(3));
        cluster.SetBrokerRtt(2, 5);
        cluster.Dispose();
        cluster.Dispose();
        Assert.Throws<ObjectDisposedException>(() => cluster.SetBrokerDown(1));
    }

    private static Message<string, byte[]> Message(int i) => new()
    {
        Key = "block-" + i.ToString(CultureInfo.InvariantCulture),
        Value = Encoding.UTF8.GetBytes(new string((char)('a' + (i % 26)), 10 + (i % 200))),
        Headers = new Headers
        {
            { "seq", BitConverter.GetBytes((long)i) },
            { "traceparent", Encoding.ASCII.GetBytes($"00-{i:x32}-{i + 1:x16}-01") },
        },
    };
}
