using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>What reconciliation keeps must stay bounded: decisions once published, entries once retired.</summary>
public sealed class GrowthTests
{
    private const int BlockSize = 4096;

    [Fact]
    public async Task published_reconciliation_decisions_leave_nothing_in_the_outbox()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new()
        {
            ["Controller__Faults__StopAfterFirstCopyOfWrite"] = "11",
            ["Controller__RetireMatchedAfter"] = "00:00:01",
        });
        await cluster.CreateVolumeAsync("out", BlockSize, 64);
        var model = new VolumeModel(BlockSize, 64);
        for (var i = 1; i <= 10; i++)
            model.Record(await cluster.WriteAsync("out", i * 4, VolumeModel.Data(i, 2, BlockSize)), i);
        // Write 11 reaches d0's log only: the controller dies between its copies, so reconciliation decides a resync.
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            using var r = await cluster.PutBlocksAsync("out", 50, VolumeModel.Data(11, 3, BlockSize));
            r.EnsureSuccessStatusCode();
        });
        await cluster.Controller.WaitForExitAsync(TimeSpan.FromSeconds(30));
        cluster.Controller.SetEnvironment("Controller__Faults__StopAfterFirstCopyOfWrite", null);
        await cluster.StartControllerAsync();

        await cluster.WaitConvergedAsync("out");
        await cluster.WaitTagTablesEmptyAsync();
        Assert.Single(await cluster.ResyncsAsync("out"));
        await Eventually.TrueAsync(async () => await cluster.ScalarAsync("SELECT count(*) FROM {schema}.recon_outbox") == 0,
            TimeSpan.FromSeconds(10), () => $"published decisions stay in the outbox: {cluster.ScalarAsync("SELECT count(*) FROM {schema}.recon_outbox").GetAwaiter().GetResult()} rows");
    }

    [Fact]
    public async Task entries_whose_retirement_request_was_lost_are_asked_for_again_and_drain()
    {
        // A long grace period, so the test can stand in for a lost request before reconciliation makes one.
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__RetireMatchedAfter"] = "00:00:30" });
        await cluster.CreateVolumeAsync("lost", BlockSize, 64);
        foreach (var d in cluster.Devices) await cluster.Agent(d).StopAsync();
        for (var i = 0; i < 10; i++)
            await cluster.WriteAsync("lost", i * 2, VolumeModel.Data(i + 1, 2, BlockSize));
        // The controller dies before any device applied those writes: their tokens die with it.
        cluster.Controller.Kill();
        foreach (var d in cluster.Devices) await cluster.StartAgentAsync(d);
        await Eventually.TrueAsync(async () => await cluster.LiveEntriesAsync() == 20, TimeSpan.FromSeconds(30),
            () => $"expected 20 live entries, {cluster.LiveEntriesAsync().GetAwaiter().GetResult()}\n{cluster.Logs()}");

        await cluster.StartControllerAsync();
        await Eventually.TrueAsync(async () => await cluster.ScalarAsync("SELECT count(*) FROM {schema}.recon_entries WHERE volume = 'lost'") == 20,
            TimeSpan.FromSeconds(20), () => "reconciliation did not see the entries\n" + cluster.Logs());
        // As if reconciliation had asked for retirement and the request was lost (no owner at the time, or the
        // owner died holding the tokens).
        Assert.Equal(0, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.recon_entries WHERE retire_requested"));
        await cluster.ScalarAsync("UPDATE {schema}.recon_entries SET retire_requested = true WHERE volume = 'lost'");

        await cluster.WaitTagTablesEmptyAsync(TimeSpan.FromSeconds(90));
    }
}
