using Confluent.Kafka;
using TaggedMirror.Hosting.Kafka;

namespace TaggedMirror.DevKafka.Tests;

/// <summary>
/// <see cref="LeaderProbe"/> against the real mock cluster: a producer whose partition leader went away and came
/// back delivers what it queued meanwhile once the probe has looked, and the probe itself never writes.
/// </summary>
public sealed class LeaderProbeTests
{
    [Fact]
    public async Task a_message_queued_while_the_leader_was_down_is_delivered_after_it_returns_and_the_probe_looks()
    {
        using var cluster = MockKafkaCluster.Start();
        var topic = KafkaClients.NewTopic("probe");
        cluster.CreateTopic(topic, partitions: 1, replicationFactor: 3);
        cluster.SetPartitionLeader(topic, 0, 2);
        using var producer = KafkaClients.Producer(cluster.BootstrapServers, messageTimeoutMs: 30_000);
        using var probe = new LeaderProbe(producer, topic);
        var before = await producer.ProduceAsync(topic, KafkaClients.Value("before"));

        cluster.SetBrokerDown(2);
        var queued = producer.ProduceAsync(topic, KafkaClients.Value("queued"));
        // While the broker is away the probe looks (and finds it missing): nothing is delivered, nothing breaks.
        for (var i = 0; i < 5; i++)
        {
            probe.Poke();
            await Task.Delay(LeaderProbe.Interval + TimeSpan.FromMilliseconds(20));
        }
        Assert.False(queued.IsCompleted, "delivered while its partition's leader was down");

        cluster.SetBrokerUp(2);
        while (!queued.IsCompleted)
        {
            probe.Poke();
            await Task.WhenAny(queued, Task.Delay(LeaderProbe.Interval));
        }
        var after = await queued;
        Assert.Equal(PersistenceStatus.Persisted, after.Status);
        // The probe wrote nothing: the queued message follows the first directly.
        Assert.Equal(before.Offset.Value + 1, after.Offset.Value);
        Assert.True(probe.Requests >= 5, $"the probe made {probe.Requests} requests");
    }

    [Fact]
    public async Task pokes_closer_together_than_the_interval_make_one_request()
    {
        using var cluster = MockKafkaCluster.Start();
        var topic = KafkaClients.NewTopic("probe-rate");
        cluster.CreateTopic(topic, partitions: 1, replicationFactor: 3);
        using var producer = KafkaClients.Producer(cluster.BootstrapServers);
        using var probe = new LeaderProbe(producer, topic);

        Assert.True(probe.Poke());
        Assert.False(probe.Poke());
        Assert.False(probe.Poke());
        Assert.Equal(1, probe.Requests);

        await Task.Delay(LeaderProbe.Interval + TimeSpan.FromMilliseconds(50));
        // The first request has long been answered by then (the cluster is local); the interval has passed.
        Assert.True(probe.Poke());
        Assert.Equal(2, probe.Requests);
    }

    [Fact]
    public async Task a_probe_of_a_cluster_that_is_not_there_returns_quietly()
    {
        using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = "127.0.0.1:1", MessageTimeoutMs = 1000 }).Build();
        using var probe = new LeaderProbe(producer, "nowhere");
        Assert.True(probe.Poke());
        // The request times out inside the probe (after 1 s) without throwing; a later poke is taken once it has.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!probe.Poke())
        {
            Assert.True(DateTime.UtcNow < deadline, "the probe's request never ended");
            await Task.Delay(50);
        }
        Assert.Equal(2, probe.Requests);
    }

    [Fact]
    public void a_client_disposed_after_its_probe_never_has_a_request_running_on_it()
    {
        // A metadata request running on a destroyed handle crashes the process (seen in CI: the test host died; before
        // the probe waited, this loop crashed it in every run). Disposing the probe first waits for its request; the
        // delays put the client's disposal before, during and after the request's one-second timeout.
        int[] delaysMs = [0, 1, 5, 50, 400, 990, 1000, 1010];
        for (var i = 0; i < 2 * delaysMs.Length; i++)
        {
            using var client = i % 2 == 0
                ? (IClient)new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = "127.0.0.1:1" }).Build()
                : new ConsumerBuilder<string, byte[]>(new ConsumerConfig { BootstrapServers = "127.0.0.1:1", GroupId = "probe" }).Build();
            var probe = new LeaderProbe(client, "nowhere");
            Assert.True(probe.Poke());
            Thread.Sleep(delaysMs[i % delaysMs.Length]);
            probe.Dispose();
            Assert.False(probe.Running, "the probe's request was still running after Dispose returned");
            Assert.False(probe.Poke(), "a disposed probe started a request");
            Assert.Equal(1, probe.Requests);
        }
    }
}
