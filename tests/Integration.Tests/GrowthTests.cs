using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// What reconciliation keeps must stay bounded: decisions once published, entries once retired, and the tag tables'
/// events once read and older than the retention.
/// </summary>
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

    [Fact]
    public async Task the_tag_tables_events_are_pruned_once_reconciliation_read_them_and_the_volume_carries_on_through_an_outage_and_restarts()
    {
        // Pruning off at first, so the test can mark events before any is pruned.
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new()
        {
            ["Controller__EventRetention"] = "00:00:00",
            ["Controller__EventPruneInterval"] = "00:00:00",
            ["Controller__RetireMatchedAfter"] = "00:00:01",
        });
        const long blocks = 256;
        await cluster.CreateVolumeAsync("pruned", BlockSize, blocks);
        var model = new VolumeModel(BlockSize, blocks);
        var seed = 0;
        async Task WriteAsync(int writes)
        {
            for (var i = 0; i < writes; i++)
            {
                seed++;
                model.Record(await cluster.WriteAsync("pruned", seed * 37 % (blocks - 3), VolumeModel.Data(seed, 3, BlockSize)), seed);
            }
        }
        const string traffic = "stream_id LIKE 'tagtable-%' AND type IN ('tag_recorded', 'tag_retired', 'barrier_passed', 'fence_passed')";
        Task<long> ReadTrafficAsync() => cluster.ScalarAsync($$"""
            SELECT count(*) FROM {schema}.mt_events WHERE {{traffic}} AND coalesce(data->>'requestId', '') <> 'p/pending'
              AND seq_id <= (SELECT min(last_seq_id) FROM {schema}.mt_event_progression WHERE name IN ('reconciliation:All', 'HighWaterMark'))
            """);
        string State() => string.Join(", ", new[]
            {
                "SELECT pruned_through FROM {schema}.event_retention",
                "SELECT events_pruned FROM {schema}.event_retention",
                "SELECT last_seq_id FROM {schema}.mt_event_progression WHERE name = 'reconciliation:All'",
                "SELECT last_seq_id FROM {schema}.mt_event_progression WHERE name = 'HighWaterMark'",
                "SELECT max(seq_id) FROM {schema}.mt_events",
                "SELECT count(*) FROM {schema}.mt_events WHERE stream_id = 'volume-pruned'",
            }.Select(q => $"{q[7..q.IndexOf(" FROM", StringComparison.Ordinal)]} = {cluster.ScalarAsync(q).GetAwaiter().GetResult()}"));

        await WriteAsync(40);
        await cluster.WaitTagTablesEmptyAsync();
        // Once reconciliation has read them all (the tag tables drain before its daemon has necessarily caught up).
        await Eventually.TrueAsync(async () => await ReadTrafficAsync() >= 160, TimeSpan.FromSeconds(30),
            () => $"forty writes to two mirrors: {ReadTrafficAsync().GetAwaiter().GetResult()} tag-table events read by reconciliation, fewer than 160 ({State()})");
        // Two copies as an intake request's would be recorded: one whose request is still pending (its recovery may
        // look for it), one whose request was answered.
        await cluster.ScalarAsync("""
            UPDATE {schema}.mt_events SET data = jsonb_set(data, '{requestId}', '"p/pending"')
            WHERE seq_id = (SELECT min(seq_id) FROM {schema}.mt_events WHERE stream_id = 'tagtable-d0' AND type = 'tag_recorded')
            """);
        await cluster.ScalarAsync("""
            UPDATE {schema}.mt_events SET data = jsonb_set(data, '{requestId}', '"p/answered"')
            WHERE seq_id = (SELECT max(seq_id) FROM {schema}.mt_events WHERE stream_id = 'tagtable-d0' AND type = 'tag_recorded')
            """);
        await cluster.ScalarAsync("""
            INSERT INTO {schema}.intake_requests (producer_id, request_id, volume, state, partition, "offset")
            VALUES ('p', 'pending', 'elsewhere', 'pending', 0, 0), ('p', 'answered', 'elsewhere', 'answered', 0, 1)
            """);
        var volumeEvents = await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE stream_id = 'volume-pruned'");

        cluster.Controller.SetEnvironment("Controller__EventPruneInterval", "00:00:01");
        await cluster.RestartControllerAsync(kill: false);
        await Eventually.TrueAsync(async () => await ReadTrafficAsync() == 0, TimeSpan.FromSeconds(30),
            () => $"{ReadTrafficAsync().GetAwaiter().GetResult()} tag-table events reconciliation read are still kept ({State()})\n{cluster.Logs()}");
        Assert.True(await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE data->>'requestId' = 'p/pending'") == 1,
            $"the copy of a pending request was pruned ({State()})");
        Assert.True(await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE data->>'requestId' = 'p/answered'") == 0,
            $"the copy of an answered request was kept ({State()})");
        Assert.True(await cluster.ScalarAsync("SELECT events_pruned FROM {schema}.event_retention") >= 160, State());
        // Every other stream keeps every event: a volume is read back from its whole stream (one event a version).
        Assert.True(await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE stream_id = 'volume-pruned'") >= volumeEvents,
            $"the volume's stream had {volumeEvents} events ({State()})");
        Assert.Equal(0, await cluster.ScalarAsync("""
            SELECT count(*) FROM {schema}.mt_streams s
            WHERE s.id NOT LIKE 'tagtable-%' AND s.version <> (SELECT count(*) FROM {schema}.mt_events e WHERE e.stream_id = s.id)
            """));

        // A mirror's agent down while writes go on (it catches up from its log), then the controller dying between the
        // two copies of a write (a resync), restarts (tokens go on from the streams' versions, not from the events
        // kept), more writes: the mirrors end identical and acknowledged, and what reconciliation read is pruned.
        await cluster.Agent("d1").StopAsync();
        await WriteAsync(20);
        await cluster.StartAgentAsync("d1");
        cluster.Controller.SetEnvironment("Controller__Faults__StopAfterFirstCopyOfWrite", "5");
        await cluster.RestartControllerAsync(kill: true);
        await WriteAsync(4);
        var cut = VolumeModel.Data(1000, 3, BlockSize);
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            using var r = await cluster.PutBlocksAsync("pruned", 100, cut);
            r.EnsureSuccessStatusCode();
        });
        await cluster.Controller.WaitForExitAsync(TimeSpan.FromSeconds(30));
        cluster.Controller.SetEnvironment("Controller__Faults__StopAfterFirstCopyOfWrite", null);
        await cluster.StartControllerAsync();
        await cluster.WaitConvergedAsync("pruned");
        await WriteAsync(20);
        await cluster.WaitConvergedAsync("pruned");
        await cluster.WaitTagTablesEmptyAsync();
        Assert.True((await cluster.ResyncsAsync("pruned")).Count > 0, $"no resync after a write reached one mirror's log only\n{cluster.Logs()}");
        var image = Mirrors.AssertIdenticalAndAcknowledged(cluster, "pruned", model.Expected(), [(100, cut)], BlockSize);
        await Mirrors.AssertReadsEqualAsync(cluster, "pruned", image, BlockSize);
        await Eventually.TrueAsync(async () => await ReadTrafficAsync() == 0, TimeSpan.FromSeconds(30),
            () => $"{ReadTrafficAsync().GetAwaiter().GetResult()} tag-table events reconciliation read are still kept ({State()})\n{cluster.Logs()}");
    }
}
