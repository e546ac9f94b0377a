using System.Globalization;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>M4 under injected faults: only what diverged is copied, and the mirrors end byte-identical.</summary>
public sealed class ReconciliationTests
{
    private const int BlockSize = 4096;

    [Fact]
    public async Task controller_killed_between_the_copies_of_a_write_is_repaired_by_copying_exactly_that_write()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new()
        {
            ["Controller__Faults__StopAfterFirstCopyOfWrite"] = "41",
            ["Controller__RetireMatchedAfter"] = "00:00:01",
        });
        const long blocks = 256;
        await cluster.CreateVolumeAsync("split", BlockSize, blocks);
        var model = new VolumeModel(BlockSize, blocks);
        var rng = new Random(5);
        for (var i = 1; i <= 40; i++)
        {
            var n = rng.Next(1, 9);
            var first = rng.NextInt64(0, blocks - n);
            model.Record(await cluster.WriteAsync("split", first, VolumeModel.Data(i, n, BlockSize)), i);
        }
        // Write 41: its first copy reaches d0's log, then the controller dies (SIGKILL, from the fault hook).
        var lastData = VolumeModel.Data(41, 5, BlockSize);
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            using var r = await cluster.PutBlocksAsync("split", 100, lastData);
            r.EnsureSuccessStatusCode();
        });
        await cluster.Controller.WaitForExitAsync(TimeSpan.FromSeconds(30));
        cluster.Controller.SetEnvironment("Controller__Faults__StopAfterFirstCopyOfWrite", null);
        await cluster.StartControllerAsync();

        await cluster.WaitConvergedAsync("split");
        var resyncs = await cluster.ResyncsAsync("split");
        var only = Assert.Single(resyncs);
        Assert.Equal(new Resync("1:1:41", "d0", "d1", 100, 5, false, "1:1:41"), only);

        // The same request again (through reconciliation's own outbox, as a re-request would come) does nothing.
        await cluster.ScalarAsync("""
            INSERT INTO {schema}.recon_outbox (kind, payload) VALUES ('resync', jsonb_build_object(
                'volume', 'split', 'tag', '1:1:41', 'firstBlock', 100, 'blockCount', 5, 'extension', false,
                'sourceDevice', 'd0', 'targetDevice', 'd1')) RETURNING id
            """);
        await Eventually.TrueAsync(async () => await cluster.ScalarAsync(
                "SELECT count(*) FROM {schema}.recon_outbox WHERE published_at IS NULL") == 0,
            TimeSpan.FromSeconds(30), () => "the repeated request was not published");
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Single(await cluster.ResyncsAsync("split"));

        // d0 had write 41; after the repair both mirrors do, and every acknowledged write is there.
        var expected = model.Expected();
        lastData.CopyTo(expected, 100 * BlockSize);
        Mirrors.AssertObjectFilesEqual(cluster, "split", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "split", expected, BlockSize);
        Assert.Equal(0, await cluster.LiveEntriesAsync());
    }

    [Fact]
    public async Task a_device_whose_log_is_undeliverable_runs_degraded_and_gets_only_the_writes_it_missed()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__DeliveryTimeout"] = "00:00:02" });
        const long blocks = 1024;
        await cluster.CreateVolumeAsync("deg", BlockSize, blocks);
        var model = new VolumeModel(BlockSize, blocks);
        await new WriteLoad(cluster, "deg", model, seed: 6).RunAsync(writes: 100, concurrency: 2);
        await cluster.WaitConvergedAsync("deg");

        cluster.Kafka.SetBrokerDown(cluster.BrokerOf("d1"));
        var during = new VolumeModel(BlockSize, blocks);
        await new WriteLoad(cluster, "deg", during, seed: 7).RunAsync(writes: 60, concurrency: 2);
        Assert.Equal("Degraded", await cluster.MirrorStateAsync("deg", "d1"));
        cluster.Kafka.SetBrokerUp(cluster.BrokerOf("d1"));

        await cluster.WaitConvergedAsync("deg");
        var resyncs = await cluster.ResyncsAsync("deg");
        var onD1 = await cluster.RecordedTagsAsync("d1", "deg");
        var onD0 = await cluster.RecordedTagsAsync("d0", "deg");
        var missed = onD0.Except(onD1).ToHashSet();
        Assert.NotEmpty(missed);
        // Exactly the writes d1 never got were copied, each completed once, from d0 to d1, and exactly their blocks:
        // overlapping and touching ranges coalesced, no block twice, none they did not touch.
        Assert.Equal(missed.Order(), resyncs.SelectMany(r => r.CompletedTags).Order());
        // Or, for writes whose blocks an earlier repair of this outage had already carried to d1 (requests arrive in
        // batches), a record that they are complete there with nothing left to copy: d1 to d1, no blocks.
        Assert.All(resyncs, r => Assert.True((r.Source, r.Target) == ("d0", "d1") || (r.Source, r.Target, r.BlockCount) == ("d1", "d1", 0),
            $"resync of {r.Tags} from {r.Source} to {r.Target}, {r.BlockCount} blocks"));
        var missedBlocks = new HashSet<long>();
        var ranges = new List<string>();
        foreach (var tag in missed)
        {
            var range = await cluster.ScalarAsync($$"""
                SELECT (data->>'firstBlock')::bigint * 100000 + (data->>'blockCount')::bigint FROM {schema}.mt_events
                WHERE stream_id = 'tagtable-d0' AND type = 'tag_recorded'
                  AND concat_ws(':', data->'tag'->>'controllerId', data->'tag'->>'epoch', data->'tag'->>'seq') = '{{tag}}'
                """);
            for (var b = range / 100000; b < range / 100000 + range % 100000; b++) missedBlocks.Add(b);
            ranges.Add($"{tag}:[{range / 100000}+{range % 100000}]");
        }
        var copiedBlocks = resyncs.SelectMany(r => Enumerable.Range(0, r.BlockCount).Select(i => r.FirstBlock + i)).ToList();
        var why = $"missed {string.Join(" ", ranges)}; copied {string.Join(" ", resyncs.Select(r => $"[{r.FirstBlock}+{r.BlockCount}]({r.Tags})"))}";
        Assert.True(copiedBlocks.Count == copiedBlocks.Distinct().Count(), "a block was copied twice: " + why);
        Assert.True(missedBlocks.Order().SequenceEqual(copiedBlocks.Order()), "the blocks copied are not the blocks missed: " + why);
        var expected = ExpectedAfter(model, during);
        Mirrors.AssertObjectFilesEqual(cluster, "deg", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "deg", expected, BlockSize);
    }

    [Fact]
    public async Task appends_that_reach_one_mirror_only_are_resynced_and_object_sizes_match()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__DeliveryTimeout"] = "00:00:02" });
        await cluster.CreateVolumeAsync("ext", BlockSize, 8);
        var appended = new List<byte>();
        async Task AppendAsync(int seed)
        {
            var data = VolumeModel.Data(seed, 1 + seed % 3, BlockSize);
            using var r = await cluster.AppendAsync("ext", data);
            Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());
            appended.AddRange(data);
        }
        for (var i = 0; i < 5; i++) await AppendAsync(i);
        cluster.Kafka.SetBrokerDown(cluster.BrokerOf("d1"));
        for (var i = 5; i < 12; i++) await AppendAsync(i);
        cluster.Kafka.SetBrokerUp(cluster.BrokerOf("d1"));
        for (var i = 12; i < 15; i++) await AppendAsync(i);

        await cluster.WaitConvergedAsync("ext");
        Assert.NotEmpty(await cluster.ResyncsAsync("ext"));
        Assert.All(await cluster.ResyncsAsync("ext"), r => Assert.True(r.Extension));
        var image = new byte[8 * BlockSize + appended.Count];
        appended.ToArray().CopyTo(image, 8 * BlockSize);
        Mirrors.AssertObjectFilesEqual(cluster, "ext", image);
        Assert.Equal(image.Length, cluster.ObjectFile("d0", "ext").Length);
        Assert.Equal(image.Length, cluster.ObjectFile("d1", "ext").Length);
        Assert.Equal(2, await cluster.ScalarAsync(
            "SELECT count(*) FROM {schema}.device_objects WHERE object_id LIKE 'ext.%' AND ext_blocks = @n", ("n", (long)(appended.Count / BlockSize))));
        Assert.Equal(appended.ToArray(), await cluster.ReadAsync("ext", 8, appended.Count / BlockSize));
    }

    [Fact]
    public async Task postgresql_restarted_during_writes_loses_nothing_and_records_nothing_twice()
    {
        await using var cluster = await TestCluster.StartAsync();
        const long blocks = 1024;
        await cluster.CreateVolumeAsync("pg", BlockSize, blocks);
        var model = new VolumeModel(BlockSize, blocks);
        var load = new WriteLoad(cluster, "pg", model, seed: 8);
        var run = load.RunAsync(writes: 2000, concurrency: 4);
        await Eventually.TrueAsync(() => Task.FromResult(load.Done > 400), TimeSpan.FromSeconds(60), () => "writes did not start");
        await cluster.RestartPostgresAsync();
        await run;

        await cluster.WaitConvergedAsync("pg");
        var expected = model.Expected();
        Mirrors.AssertObjectFilesEqual(cluster, "pg", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "pg", expected, BlockSize);
        // Every write was recorded by every mirror, or, on a mirror degraded meanwhile, repaired there by exactly the
        // resync of what it missed. A restart slower than LagTimeout (with the agents' reconnection) degrades a mirror by
        // design: its agent can record nothing while PostgreSQL is away, and its unapplied log must not outgrow the window.
        var everywhere = new HashSet<string>(StringComparer.Ordinal);
        foreach (var d in cluster.Devices) everywhere.UnionWith(await cluster.RecordedTagsAsync(d, "pg"));
        Assert.Equal(2000, everywhere.Count);
        var resyncs = await cluster.ResyncsAsync("pg");
        foreach (var d in cluster.Devices)
        {
            // Nothing recorded twice: one tag_recorded per tag in the device's stream, writes and repairs alike.
            Assert.Equal(
                await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE stream_id = @s AND type = 'tag_recorded'", ("s", "tagtable-" + d)),
                await cluster.ScalarAsync(
                    "SELECT count(DISTINCT data->'tag') FROM {schema}.mt_events WHERE stream_id = @s AND type = 'tag_recorded'", ("s", "tagtable-" + d)));
            var missed = everywhere.Except(await cluster.RecordedTagsAsync(d, "pg")).Order(StringComparer.Ordinal).ToList();
            var repaired = resyncs.Where(r => r.Target == d).SelectMany(r => r.CompletedTags).Order(StringComparer.Ordinal).ToList();
            Assert.True(missed.SequenceEqual(repaired),
                $"{d} missed {missed.Count} writes ({string.Join(" ", missed.Take(10))}…) but resyncs completed {repaired.Count} there ({string.Join(" ", repaired.Take(10))}…)");
        }
    }

    [Fact]
    public async Task reconciliation_follows_every_event_again_after_each_postgresql_outage_with_two_controllers()
    {
        // Reconciliation runs in Marten's daemon on one controller at a time; a PostgreSQL outage drops the daemon's
        // lock and its agent. After each outage one of the controllers must run it again and catch up with the log.
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__LeaseDuration"] = "00:00:03" });
        var second = cluster.NewController("controller-2", new() { ["Controller__Id"] = "2" });
        await cluster.StartControllerAsync(second);
        await cluster.CreateVolumeAsync("pgout", BlockSize, 64);
        // One write at a time, so the last one answered is the newest (tags of two controllers do not order them).
        var expected = new byte[64 * BlockSize];
        var rng = new Random(11);
        var n = 0;
        // Writes go to the volume's owner as the lease table has it: the lease may move in an outage.
        async Task WriteAsync()
        {
            n++;
            var owner = await cluster.ScalarAsync("SELECT controller_id FROM {schema}.volume_leases WHERE volume = 'pgout'") == 2 ? second : cluster.Controller;
            var first = rng.Next(0, 60);
            var data = VolumeModel.Data(n, 4, BlockSize);
            await cluster.WriteAsync("pgout", first, data, wait: "applied", via: owner);
            data.CopyTo(expected, first * BlockSize);
        }
        for (var outage = 1; outage <= 8; outage++)
        {
            for (var i = 0; i < 5; i++) await WriteAsync();
            await PostgresServer.StopAsync();
            await Task.Delay(TimeSpan.FromMilliseconds(rng.Next(200, 8000)));
            await PostgresServer.StartAsync();
            cluster.DataSource.Clear();
            await cluster.WaitApiHealthyAsync("pgout");
            await Eventually.TrueAsync(async () => await cluster.ScalarAsync(
                "SELECT count(*) FROM {schema}.volume_leases WHERE volume = 'pgout' AND expires_at > now()") == 1, TimeSpan.FromSeconds(30), () => "no controller holds the volume");
            for (var i = 0; i < 5; i++) await WriteAsync();
            await Eventually.TrueAsync(async () => await cluster.ScalarAsync(
                    "SELECT (SELECT max(seq_id) FROM {schema}.mt_events) - coalesce((SELECT last_seq_id FROM {schema}.mt_event_progression WHERE name = 'reconciliation:All'), 0)") <= 0,
                TimeSpan.FromSeconds(30), () => $"reconciliation stopped following the log after PostgreSQL outage {outage}\n" + cluster.Logs());
        }
        await cluster.WaitConvergedAsync("pgout");
        Mirrors.AssertObjectFilesEqual(cluster, "pgout", expected);
    }

    [Theory]
    [InlineData("controller")]
    [InlineData("agent")]
    public async Task a_coalesced_resync_killed_midway_ends_with_identical_mirrors_while_writes_go_on(string killed)
    {
        // Paced to 256 KiB/s so the resync of the outage's writes takes seconds, and is killed in the middle.
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new()
        {
            ["Controller__DeliveryTimeout"] = "00:00:01.500",
            ["Controller__ResyncMaxBytesPerSecond"] = "262144",
        });
        const long blocks = 512;
        await cluster.CreateVolumeAsync("ck", BlockSize, blocks);
        var model = new VolumeModel(BlockSize, blocks);
        await new WriteLoad(cluster, "ck", model, seed: 31).RunAsync(writes: 20, concurrency: 2);
        await cluster.WaitConvergedAsync("ck");
        cluster.Kafka.SetBrokerDown(cluster.BrokerOf("d1"));
        await new WriteLoad(cluster, "ck", model, seed: 32).RunAsync(writes: 80, concurrency: 2);
        Assert.Equal("Degraded", await cluster.MirrorStateAsync("ck", "d1"));
        cluster.Kafka.SetBrokerUp(cluster.BrokerOf("d1"));
        await Eventually.TrueAsync(async () => (await cluster.ResyncsAsync("ck")).Count >= 2, TimeSpan.FromSeconds(60),
            () => "the resync did not start\n" + cluster.Logs());

        // Writes go on through the kill and after it, to blocks [400, 512). One cut off by the kill is uncertain: it
        // may be on the mirrors or not, so there a block may hold its bytes instead of the model's.
        var writes = WritesThroughFault.RunAsync(cluster, "ck", model, from: 400, to: blocks, writes: 30, seed: 33);
        Assert.Equal("Resyncing", await cluster.MirrorStateAsync("ck", "d1")); // the kill lands in the middle of the resync
        if (killed == "controller")
        {
            await cluster.RestartControllerAsync(kill: true);
        }
        else
        {
            cluster.Agent("d1").Kill();
            await Task.Delay(500);
            await cluster.StartAgentAsync("d1");
        }
        var uncertain = await writes;

        await cluster.WaitConvergedAsync("ck", TimeSpan.FromSeconds(120));
        var image = Mirrors.AssertIdenticalAndAcknowledged(cluster, "ck", model.Expected(), uncertain, BlockSize);
        await Mirrors.AssertReadsEqualAsync(cluster, "ck", image, BlockSize);
    }

    private static byte[] ExpectedAfter(VolumeModel first, VolumeModel second)
    {
        var image = first.Expected();
        var overlay = second.Expected();
        var written = second.WrittenBlocks();
        for (var b = 0; b < first.Blocks; b++)
        {
            if (written[b]) overlay.AsSpan(b * BlockSize, BlockSize).CopyTo(image.AsSpan(b * BlockSize));
        }
        return image;
    }
}
