using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// An agent starting beside others that are applying writes. Its start checks the device tables exist; that check
/// must not lock tables the running agents write, or it waits for their batches and, holding what it already locked,
/// can deadlock with them (seen in CI: a restarted agent exited with 40P01).
/// </summary>
public sealed class AgentStartTests
{
    [Fact]
    public async Task an_agent_starts_while_another_holds_a_batch_open_on_the_device_tables()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("busy", 4096, 64);
        var model = new VolumeModel(4096, 64);
        model.Record(await cluster.WriteAsync("busy", 0, VolumeModel.Data(1, 4, 4096)), 1);
        await cluster.Agent("d1").StopAsync();

        // A batch of another device's, left open: it has written both tables an agent's batch writes.
        await using var conn = await cluster.DataSource.OpenConnectionAsync();
        await using var tx = await conn.BeginTransactionAsync();
        await using (var hold = conn.CreateCommand())
        {
            hold.Transaction = tx;
            hold.CommandText = $"""
                INSERT INTO {cluster.Schema}.block_writes (device_id, object_id, partition, topic_offset, first_block, block_count, controller_id, epoch, seq, kind, owner_epoch)
                VALUES ('d-other', 'o', 0, 0, 0, 1, 1, 1, 1, 0, 0);
                DELETE FROM {cluster.Schema}.tag_table WHERE device_id = 'd-other';
                """;
            await hold.ExecuteNonQueryAsync();
        }

        // d1 starts and serves while that transaction is still open (before: its start waited on it).
        var start = cluster.StartAgentAsync("d1");
        var finished = await Task.WhenAny(start, Task.Delay(TimeSpan.FromSeconds(45)));
        await tx.RollbackAsync();
        Assert.True(finished == start, "agent d1 did not start while another transaction held the device tables\n" + cluster.Agent("d1").Tail());
        await start;

        model.Record(await cluster.WriteAsync("busy", 8, VolumeModel.Data(2, 2, 4096)), 2);
        await cluster.WaitConvergedAsync("busy");
        await Mirrors.AssertReadsEqualAsync(cluster, "busy", model.Expected(), 4096);
    }
}
