using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// A process starting beside others that are running. Its start checks its tables, indexes and columns exist; that
/// check must not lock tables the running processes write, or it waits for their transactions, holds up theirs
/// behind it (a controller's lease renewals), and, holding what it already locked, can deadlock with them (seen in
/// CI: a restarted agent exited with 40P01). <c>Hosting.SchemaChanges</c>.
/// </summary>
public sealed class StartTests
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

    [Fact]
    public async Task a_second_controller_starts_while_the_first_holds_a_transaction_open_on_its_tables()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("busy", 4096, 64);
        var model = new VolumeModel(4096, 64);
        model.Record(await cluster.WriteAsync("busy", 0, VolumeModel.Data(1, 4, 4096)), 1);

        // A transaction of the running controller's kind, left open: it has written every table whose index or later
        // column a start adds (a daemon batch writes the reconciliation's, the lease loop volume_leases).
        await using var conn = await cluster.DataSource.OpenConnectionAsync();
        await using var tx = await conn.BeginTransactionAsync();
        await using (var hold = conn.CreateCommand())
        {
            hold.Transaction = tx;
            hold.CommandText = string.Join('\n', new[] { "volume_leases", "rebuilds", "recon_entries", "recon_outbox", "resyncs" }
                .Select(t => $"DELETE FROM {cluster.Schema}.{t} WHERE false;"));
            await hold.ExecuteNonQueryAsync();
        }

        // A second controller starts and answers while that transaction is still open (before: its start waited on it,
        // holding volume_leases locked against the first controller's lease renewals meanwhile).
        var other = cluster.NewController("controller-2", new() { ["Controller__Id"] = "2" });
        var start = cluster.StartControllerAsync(other);
        var finished = await Task.WhenAny(start, Task.Delay(TimeSpan.FromSeconds(45)));
        await tx.RollbackAsync();
        Assert.True(finished == start, "controller 2 did not start while another transaction held the controller's tables\n" + other.Tail());
        await start;

        model.Record(await cluster.WriteAsync("busy", 8, VolumeModel.Data(2, 2, 4096)), 2);
        await cluster.WaitConvergedAsync("busy");
        await Mirrors.AssertReadsEqualAsync(cluster, "busy", model.Expected(), 4096);
    }
}
