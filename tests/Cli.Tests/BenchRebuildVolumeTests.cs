using System.Text;
using Confluent.Kafka;
using TaggedMirror.Cli.Commands;
using TaggedMirror.DevKafka;

namespace TaggedMirror.Cli.Tests;

/// <summary>
/// <c>tm bench-rebuild --volumes</c>: the volumes it picks have their objects on the rebuilt device in as many partitions
/// as there are volumes, as a real producer with the controller's default partitioner places them (librdkafka's mock
/// cluster), so each volume's log has a partition's window of its own.
/// </summary>
public sealed class BenchRebuildVolumeTests
{
    [Theory]
    [InlineData(2, 2)]
    [InlineData(4, 4)]
    [InlineData(3, 16)]
    [InlineData(8, 8)]
    public async Task the_volumes_land_in_different_partitions_as_a_producer_places_their_objects(int count, int partitions)
    {
        using var cluster = MockKafkaCluster.Start(brokers: 1);
        cluster.CreateTopic("tm.device.d1", partitions, replicationFactor: 1);
        var names = BenchRebuildCommand.VolumeNames("rebuild-20261202-000000", "d1", count, partitions);

        using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers }).Build();
        var placed = new HashSet<int>();
        foreach (var name in names)
        {
            var delivery = await producer.ProduceAsync("tm.device.d1", new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes($"{name}.d1"), Value = [] });
            placed.Add(delivery.Partition.Value);
        }
        Assert.Equal(count, names.Distinct().Count());
        Assert.Equal(count, placed.Count);
    }

    [Fact]
    public void one_volume_is_the_name_itself()
    {
        Assert.Equal(["rebuild-x"], BenchRebuildCommand.VolumeNames("rebuild-x", "d1", 1, 1));
    }

    [Fact]
    public void more_volumes_than_partitions_are_refused_saying_how_to_get_more()
    {
        var ex = Assert.Throws<CliException>(() => BenchRebuildCommand.VolumeNames("rebuild-x", "d1", 5, 4));
        Assert.Contains("TM_DEVICE_PARTITIONS=5", ex.Message);
        Assert.Contains("has 4", ex.Message);
    }
}
