using Confluent.Kafka;

namespace TaggedMirror.DevKafka.Tests;

public sealed class BrokerFaultTests
{
    [Fact]
    public async Task produce_fails_while_the_partition_leader_is_down_and_succeeds_after_it_is_up()
    {
        using var cluster = MockKafkaCluster.Start();
        var topic = KafkaClients.NewTopic("faults");
        cluster.CreateTopic(topic, partitions: 1, replicationFactor: 3);
        // A downed mock broker keeps leadership, so pin the leader to know which broker to stop.
        cluster.SetPartitionLeader(topic, 0, 2);

        using var producer = KafkaClients.Producer(cluster.BootstrapServers, messageTimeoutMs: 2000);
        var before = await producer.ProduceAsync(topic, KafkaClients.Value("before"));
        Assert.Equal(PersistenceStatus.Persisted, before.Status);

        cluster.SetBrokerDown(2);
        var failure = await Assert.ThrowsAsync<ProduceException<string, byte[]>>(() => producer.ProduceAsync(topic, KafkaClients.Value("while-down")));
        Assert.Equal(ErrorCode.Local_MsgTimedOut, failure.Error.Code);
        Assert.Equal(PersistenceStatus.NotPersisted, failure.DeliveryResult.Status);

        cluster.SetBrokerUp(2);
        var after = await producer.ProduceAsync(topic, KafkaClients.Value("after"));
        Assert.Equal(PersistenceStatus.Persisted, after.Status);
        Assert.Equal(before.Offset.Value + 1, after.Offset.Value);
    }

    [Fact]
    public async Task pushed_request_errors_are_retried_by_the_idempotent_producer()
    {
        using var cluster = MockKafkaCluster.Start();
        var topic = KafkaClients.NewTopic("pushed");
        cluster.CreateTopic(topic, partitions: 1, replicationFactor: 3);
        using var producer = KafkaClients.Producer(cluster.BootstrapServers);
        await producer.ProduceAsync(topic, KafkaClients.Value("warm-up"));

        // ApiKey 0 = Produce; NOT_ENOUGH_REPLICAS is retriable.
        cluster.PushRequestErrors(0, (int)ErrorCode.NotEnoughReplicas, (int)ErrorCode.NotEnoughReplicas);
        var result = await producer.ProduceAsync(topic, KafkaClients.Value("retried"));
        Assert.Equal(PersistenceStatus.Persisted, result.Status);
        Assert.Equal(1, result.Offset.Value);
    }
}
