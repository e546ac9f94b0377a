using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// The product's queues are durable (a controller's acknowledgements wait for it across a restart), so test
/// clusters, which come and go by the hundred on one shared broker, must remove theirs.
/// </summary>
public sealed class BusCleanupTests
{
    [Fact]
    public async Task a_disposed_test_cluster_leaves_no_queue_or_exchange_of_its_own_on_the_broker()
    {
        string id;
        await using (var cluster = await TestCluster.StartAsync())
        {
            id = cluster.Id;
            await cluster.CreateVolumeAsync("bus", 4096, 16);
            await cluster.WriteAsync("bus", 0, new byte[4096]);
            await cluster.WaitTagTablesEmptyAsync(); // acknowledgements went over the bus
            var (queues, exchanges) = await Bus.ListAsync(id);
            Assert.Contains($"tm.{id}.controller-1", queues);
            Assert.Contains($"tm.{id}.controller-1", exchanges);
            Assert.Contains(exchanges, e => e.EndsWith(":DeviceApplied", StringComparison.Ordinal));
        }

        var (left, leftExchanges) = await Bus.ListAsync(id);
        Assert.Empty(left);
        Assert.Empty(leftExchanges);
    }
}
