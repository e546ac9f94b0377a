using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Paths where an acknowledged write could be lost, or read back older than acknowledged, under combined
/// faults: a copy source that lacks a write, a read from a mirror that is behind its log after a restart,
/// and a mirror's degradation that cannot be recorded because PostgreSQL is away.
/// </summary>
public sealed class AcknowledgedWriteTests
{
    private const int BlockSize = 4096;

    [Fact]
    public async Task with_three_mirrors_a_write_only_one_mirror_got_is_copied_from_that_mirror_never_from_one_that_lacks_it()
    {
        await using var cluster = await TestCluster.StartAsync(devices: ["d0", "d1", "d2"], controllerSettings: new()
        {
            ["Controller__Faults__StopAfterFirstCopyOfWrite"] = "11",
            ["Controller__DeliveryTimeout"] = "00:00:01.500",
            ["Controller__RetireMatchedAfter"] = "00:00:01",
        });
        const long blocks = 64;
        await cluster.CreateVolumeAsync("three", BlockSize, blocks);
        var model = new VolumeModel(BlockSize, blocks);
        for (var i = 1; i <= 10; i++)
            model.Record(await cluster.WriteAsync("three", i * 4 % 40, VolumeModel.Data(i, 4, BlockSize)), i);

        // Write 11: its first copy reaches d0's log, then the controller dies. d1 and d2 never get it.
        var only = VolumeModel.Data(11, 4, BlockSize);
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            using var r = await cluster.PutBlocksAsync("three", 48, only);
            r.EnsureSuccessStatusCode();
        });
        await cluster.Controller.WaitForExitAsync(TimeSpan.FromSeconds(30));
        string? epoch1 = null;
        await Eventually.TrueAsync(async () =>
            (epoch1 = (await cluster.RecordedTagsAsync("d0", "three")).SingleOrDefault(t => t.EndsWith(":11", StringComparison.Ordinal))) is not null,
            TimeSpan.FromSeconds(30), () => "d0 did not apply write 11");

        // d0 becomes unreachable before the new controller starts, and a write that misses it degrades it.
        // Reconciliation now asks to copy write 11 to d1 and d2 while its only holder is not in sync: copying
        // it from d2 to d1 (or d1 to d2) would leave d0 with write 11 and the others without, for good.
        cluster.Kafka.SetBrokerDown(cluster.BrokerOf("d0"));
        cluster.Controller.SetEnvironment("Controller__Faults__StopAfterFirstCopyOfWrite", null);
        await cluster.StartControllerAsync();
        model.Record(await cluster.WriteAsync("three", 0, VolumeModel.Data(12, 1, BlockSize)), 12);
        Assert.Equal("Degraded", await cluster.MirrorStateAsync("three", "d0"));
        // Long enough for reconciliation to ask again (it re-asks after 20 s) while d0 is away.
        var until = DateTime.UtcNow.AddSeconds(25);
        while (DateTime.UtcNow < until && (await cluster.ResyncsAsync("three")).Count(r => r.CompletedTags.Contains(epoch1!)) < 2)
            await Task.Delay(250);
        cluster.Kafka.SetBrokerUp(cluster.BrokerOf("d0"));

        await cluster.WaitConvergedAsync("three", TimeSpan.FromSeconds(120));
        foreach (var r in (await cluster.ResyncsAsync("three")).Where(r => r.Tag == epoch1 || r.CompletedTags.Contains(epoch1!)))
            Assert.Equal("d0", r.Source);
        var expected = model.Expected();
        only.CopyTo(expected, 48 * BlockSize);
        Mirrors.AssertObjectFilesEqual(cluster, "three", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "three", expected, BlockSize);
    }

    [Fact]
    public async Task after_a_double_fault_with_no_mirror_in_sync_each_block_is_copied_from_the_holder_of_its_newest_write()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new()
        {
            ["Controller__DeliveryTimeout"] = "00:00:01.500",
            ["Controller__RetireMatchedAfter"] = "00:00:01",
        });
        await cluster.CreateVolumeAsync("dbl", BlockSize, 16);
        var model = new VolumeModel(BlockSize, 16);
        model.Record(await cluster.WriteAsync("dbl", 0, VolumeModel.Data(1, 8, BlockSize), wait: "applied"), 1);

        // d1 misses write 2 (blocks 0-3): d0 alone has it.
        cluster.Kafka.SetBrokerDown(cluster.BrokerOf("d1"));
        var second = await cluster.WriteAsync("dbl", 0, VolumeModel.Data(2, 4, BlockSize));
        model.Record(second, 2);
        Assert.Equal("Degraded", await cluster.MirrorStateAsync("dbl", "d1"));
        await Eventually.TrueAsync(async () => (await cluster.RecordedTagsAsync("d0", "dbl")).Contains(second.Tag),
            TimeSpan.FromSeconds(30), () => "d0 did not apply write 2");
        // d0's agent goes away before write 2 can be copied to d1, and d1 comes back (Resyncing).
        cluster.Agent("d0").Kill();
        cluster.Kafka.SetBrokerUp(cluster.BrokerOf("d1"));
        await Eventually.TrueAsync(async () => await cluster.MirrorStateAsync("dbl", "d1") == "Resyncing",
            TimeSpan.FromSeconds(30), () => "d1 did not come back");
        // Now d0 misses write 3 (blocks 2-5, over part of write 2): d1 alone has it. No mirror holds both.
        cluster.Kafka.SetBrokerDown(cluster.BrokerOf("d0"));
        var third = await cluster.WriteAsync("dbl", 2, VolumeModel.Data(3, 4, BlockSize));
        model.Record(third, 3);
        Assert.Equal(1, third.MirrorsHolding);
        cluster.Kafka.SetBrokerUp(cluster.BrokerOf("d0"));
        await cluster.StartAgentAsync("d0");

        // Blocks 0-1 come from d0 (write 2), blocks 2-5 from d1 (write 3, the newer): both mirrors end equal.
        await cluster.WaitConvergedAsync("dbl", TimeSpan.FromSeconds(120));
        var expected = model.Expected();
        Mirrors.AssertObjectFilesEqual(cluster, "dbl", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "dbl", expected, BlockSize);
    }

    [Fact]
    public async Task a_read_after_a_controller_restart_returns_every_acknowledged_write_even_when_the_first_mirror_is_behind_its_log()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("ryw", BlockSize, 16);
        await cluster.WriteAsync("ryw", 0, VolumeModel.Data(1, 1, BlockSize), wait: "applied");

        // d0's agent is down when write 2 is acknowledged (it is in d0's log, not applied there).
        cluster.Agent("d0").Kill();
        var second = VolumeModel.Data(2, 1, BlockSize);
        var answer = await cluster.WriteAsync("ryw", 0, second);
        await Eventually.TrueAsync(async () => (await cluster.RecordedTagsAsync("d1", "ryw")).Contains(answer.Tag),
            TimeSpan.FromSeconds(30), () => "d1 did not apply write 2");
        await cluster.RestartControllerAsync(kill: true);

        // d0 comes back, but cannot fetch its log yet: it serves reads of what it has, which is write 1.
        cluster.Kafka.SetBrokerDown(cluster.BrokerOf("d0"));
        await cluster.StartAgentAsync("d0", waitRunning: false);
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                await cluster.AgentStatusAsync("d0");
                return true;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(60), () => "d0's agent did not answer");

        Assert.Equal(second, await cluster.ReadAsync("ryw", 0, 1));

        cluster.Kafka.SetBrokerUp(cluster.BrokerOf("d0"));
        await cluster.WaitConvergedAsync("ryw");
        Assert.Equal(second, await cluster.ReadAsync("ryw", 0, 1));
        var expected = new byte[16 * BlockSize];
        second.CopyTo(expected, 0);
        Mirrors.AssertObjectFilesEqual(cluster, "ryw", expected);
    }

    /// <summary>
    /// A mirror's agent that stalls (SIGSTOP: a scheduler pause, a hung disk) while a read asks it is given up after the
    /// controller's device timeout, and the other mirror answers: a stall is a mirror unavailable, not a failed read.
    /// </summary>
    [Fact]
    public async Task a_read_is_answered_by_the_other_mirror_when_the_first_ones_agent_stalls_mid_read()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("stall", BlockSize, 16);
        var data = VolumeModel.Data(7, 2, BlockSize);
        await cluster.WriteAsync("stall", 3, data, wait: "applied");
        Assert.Equal(data, await cluster.ReadAsync("stall", 3, 2));   // d0 answered once: the next read asks it at once

        cluster.Agent("d0").Pause();
        try
        {
            Assert.Equal(data, await cluster.ReadAsync("stall", 3, 2));
        }
        finally
        {
            cluster.Agent("d0").Resume();
        }
    }

    [Fact]
    public async Task a_write_that_misses_a_mirror_while_postgres_is_down_is_answered_only_once_the_degrade_is_recorded_and_barriers_go_on()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__DeliveryTimeout"] = "00:00:01.500" });
        await cluster.CreateVolumeAsync("pgdown", BlockSize, 16);
        await cluster.WriteAsync("pgdown", 0, VolumeModel.Data(1, 1, BlockSize), wait: "applied");

        cluster.Kafka.SetBrokerDown(cluster.BrokerOf("d1"));
        await PostgresServer.StopAsync();
        Task<WriteResult> write;
        var second = VolumeModel.Data(2, 1, BlockSize);
        try
        {
            write = cluster.WriteAsync("pgdown", 0, second);
            // The copy to d1 fails after 1.5 s; d1's degradation cannot be recorded: no answer yet.
            await Task.Delay(TimeSpan.FromSeconds(5));
            Assert.False(write.IsCompleted, "the write was answered before the mirror it missed was recorded as degraded");
        }
        finally
        {
            await PostgresServer.StartAsync();
            cluster.DataSource.Clear();
        }
        var answer = await write;
        Assert.Equal(1, answer.MirrorsHolding);
        Assert.Equal("Degraded", await cluster.MirrorStateAsync("pgdown", "d1"));
        Assert.Equal(1, await cluster.ScalarAsync(
            "SELECT count(*) FROM {schema}.mt_events WHERE stream_id = 'volume-pgdown' AND type = 'mirror_state_changed' AND data->>'state' = 'Degraded'"));

        // Barriers go on past the write that failed: d0 passes one covering it.
        await Eventually.TrueAsync(async () => await cluster.ScalarAsync(
                "SELECT coalesce(max(up_to_seq), 0) FROM {schema}.recon_barriers WHERE device_id = 'd0' AND epoch = @e", ("e", answer.Epoch)) >= answer.Seq,
            TimeSpan.FromSeconds(30), () => "barriers stopped below the write whose copy failed\n" + cluster.Logs());

        cluster.Kafka.SetBrokerUp(cluster.BrokerOf("d1"));
        await cluster.WaitConvergedAsync("pgdown");
        var expected = new byte[16 * BlockSize];
        second.CopyTo(expected, 0);
        Mirrors.AssertObjectFilesEqual(cluster, "pgdown", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "pgdown", expected, BlockSize);
    }
}
