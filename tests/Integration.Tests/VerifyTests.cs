using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>Issue 9, <c>tm verify</c>: an online scrub that finds bytes changed behind the product's back and repairs them from the right mirror.</summary>
public sealed class VerifyTests
{
    private const int BlockSize = 4096;

    [Fact]
    public async Task verify_finds_exactly_the_blocks_changed_behind_the_product_and_repairs_them_from_the_mirror_that_holds_them_right()
    {
        await using var cluster = await TestCluster.StartAsync();
        const long blocks = 1024; // four ranges of 256 blocks
        await cluster.CreateVolumeAsync("scrub", BlockSize, blocks);
        var model = new VolumeModel(BlockSize, blocks);
        await new WriteLoad(cluster, "scrub", model, seed: 21).RunAsync(writes: 400, concurrency: 4);
        await cluster.WaitConvergedAsync("scrub");
        var written = model.WrittenBlocks();
        // Corrupt blocks both mirrors hold written bytes for (so each has a checksum recorded), on both mirrors.
        var corrupt = new[] { ("d1", 10L, 3), ("d0", 700L, 1), ("d1", 1000L, 2) };
        foreach (var (device, first, count) in corrupt)
        {
            Assert.True(Enumerable.Range(0, count).All(i => written[first + i]), $"block {first} was never written: pick another seed");
            Corrupt(cluster, device, "scrub", first, count);
        }

        // Writes go on during the scrub, away from the corrupted blocks (a write there would overwrite the damage).
        using var stop = new CancellationTokenSource();
        var seed = 5_000_000;
        var writer = Task.Run(async () =>
        {
            var rng = new Random(4);
            while (!stop.IsCancellationRequested)
            {
                var n = rng.Next(1, 9);
                var first = rng.NextInt64(300, 600 - n);
                var s = Interlocked.Increment(ref seed);
                model.Record(await cluster.WriteAsync("scrub", first, VolumeModel.Data(s, n, BlockSize)), s);
            }
        });
        var report = await VerifyAsync(cluster, "scrub");
        await stop.CancelAsync();
        await writer;

        Assert.Equal("done", report.State);
        Assert.Equal(blocks, report.BlocksChecked);
        Assert.Equal(0, report.RangesSkipped);
        var found = report.Mismatches.Select(m => (m.Device, m.FirstBlock, m.Blocks, m.Kind, m.Source, m.Repaired)).Order().ToList();
        var want = corrupt.Select(c => (c.Item1, c.Item2, c.Item3, "corrupt", (string?)(c.Item1 == "d0" ? "d1" : "d0"), true)).Order().ToList();
        Assert.Equal(want, found);
        Assert.Equal(corrupt.Sum(c => (long)c.Item3) * BlockSize, report.BytesRepaired);

        await cluster.WaitConvergedAsync("scrub");
        var expected = model.Expected();
        Mirrors.AssertObjectFilesEqual(cluster, "scrub", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "scrub", expected, BlockSize);
        // The summary is in the volume's stream, and a second scrub finds nothing.
        Assert.Equal(1, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE stream_id = 'volume-scrub' AND type = 'verify_completed'"));
        var again = await VerifyAsync(cluster, "scrub");
        Assert.Equal(("done", 0), (again.State, again.Mismatches.Count));
    }

    [Fact]
    public async Task verify_without_repair_reports_and_changes_nothing_and_bad_requests_are_refused()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("look", BlockSize, 64);
        var model = new VolumeModel(BlockSize, 64);
        model.Record(await cluster.WriteAsync("look", 0, VolumeModel.Data(1, 64, BlockSize)), 1);
        await cluster.WaitConvergedAsync("look");
        Corrupt(cluster, "d0", "look", 5, 1);
        var damaged = cluster.ObjectFile("d0", "look");

        var report = await VerifyAsync(cluster, "look", "?repair=false&rangeBlocks=16");
        var m = Assert.Single(report.Mismatches);
        Assert.Equal(("d0", 5L, 1, "corrupt", "d1", false), (m.Device, m.FirstBlock, m.Blocks, m.Kind, m.Source, m.Repaired));
        Assert.Equal(damaged, cluster.ObjectFile("d0", "look"));

        foreach (var (query, status) in new[]
        {
            ("?rangeBlocks=0", HttpStatusCode.BadRequest), ("?rangeBlocks=-1", HttpStatusCode.BadRequest),
            ("?rangeBlocks=4097", HttpStatusCode.BadRequest), ("?rangeBlocks=99999999999", HttpStatusCode.BadRequest),
            ("?repair=maybe", HttpStatusCode.BadRequest), ("?maxBytesPerSecond=-5", HttpStatusCode.BadRequest),
        })
        {
            using var r = await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/volumes/look/verify{query}"), null);
            Assert.True(r.StatusCode == status, $"{query}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
            Assert.Contains("detail", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        using (var r = await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/volumes/nope/verify"), null))
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        using (var r = await cluster.Http.GetAsync(new Uri($"{cluster.Controller.Url}/volumes/nope/verify")))
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);

        // A slow scrub (4 KiB a second over two mirrors) runs while a second is asked for: refused, and the first goes on.
        using (var first = await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/volumes/look/verify?maxBytesPerSecond=4096&rangeBlocks=1"), null))
            Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        using (var second = await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/volumes/look/verify"), null))
            Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
        var running = await cluster.Http.GetFromJsonAsync<VerifyReport>(new Uri($"{cluster.Controller.Url}/volumes/look/verify"), JsonSerializerOptions.Web);
        Assert.Equal("running", running!.State);
        Assert.InRange(running.RangesDone, 0, running.RangesTotal - 1);
    }

    [Theory]
    [InlineData("controller")]
    [InlineData("agent")]
    public async Task a_verify_killed_midway_changes_nothing_wrongly_and_the_next_verify_repairs_everything(string killed)
    {
        await using var cluster = await TestCluster.StartAsync();
        const long blocks = 512;
        await cluster.CreateVolumeAsync("vk", BlockSize, blocks);
        var model = new VolumeModel(BlockSize, blocks);
        for (var i = 0; i < 8; i++)
            model.Record(await cluster.WriteAsync("vk", i * 64, VolumeModel.Data(i + 1, 64, BlockSize)), i + 1);
        await cluster.WaitConvergedAsync("vk");
        Corrupt(cluster, "d1", "vk", 5, 2);
        Corrupt(cluster, "d1", "vk", 450, 1);
        Corrupt(cluster, "d0", "vk", 100, 1);

        // Slow (256 KiB a second, ranges of 16 blocks on two mirrors: half a second a range), killed a few ranges in.
        using (var r = await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/volumes/vk/verify?maxBytesPerSecond=262144&rangeBlocks=16"), null))
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        var writes = WritesThroughFault.RunAsync(cluster, "vk", model, from: 200, to: 300, writes: 40, seed: 9);
        await Task.Delay(TimeSpan.FromSeconds(3));
        if (killed == "controller")
        {
            await cluster.RestartControllerAsync(kill: true);
            using var r = await cluster.Http.GetAsync(new Uri($"{cluster.Controller.Url}/volumes/vk/verify"));
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode); // the report lived in the process that died
        }
        else
        {
            cluster.Agent("d1").Kill();
            await Task.Delay(TimeSpan.FromSeconds(1));
            await cluster.StartAgentAsync("d1");
            // The verify went on without d1 where it could not reach it; it ends by itself.
            await Eventually.TrueAsync(async () => (await cluster.Http.GetFromJsonAsync<VerifyReport>(
                    new Uri($"{cluster.Controller.Url}/volumes/vk/verify"), JsonSerializerOptions.Web))!.State != "running",
                TimeSpan.FromSeconds(90), () => "the verify running through the agent's kill did not end\n" + cluster.Logs());
        }
        var uncertain = await writes;
        await cluster.WaitConvergedAsync("vk");

        // Whatever the first verify did before the kill, the next one leaves nothing wrong, and a third finds nothing.
        for (var pass = 0; pass < 5; pass++)
        {
            var report = await VerifyAsync(cluster, "vk");
            if (report.State == "done" && report.RangesSkipped == 0 && report.Mismatches.Count == 0) break;
            Assert.True(pass < 4, $"verify still finds something after {pass + 1} passes: {JsonSerializer.Serialize(report)}");
            Assert.All(report.Mismatches, m => Assert.True(m.Repaired, $"{m.Device} [{m.FirstBlock}, +{m.Blocks}) not repaired: {m.Note}"));
        }
        var image = Mirrors.AssertIdenticalAndAcknowledged(cluster, "vk", model.Expected(), uncertain, BlockSize);
        await Mirrors.AssertReadsEqualAsync(cluster, "vk", image, BlockSize);
    }

    [Fact]
    public async Task a_checksum_older_than_its_block_is_reported_as_stale_not_corrupt_and_rewritten_without_changing_the_bytes()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("stale", BlockSize, 64);
        var model = new VolumeModel(BlockSize, 64);
        model.Record(await cluster.WriteAsync("stale", 0, VolumeModel.Data(1, 64, BlockSize)), 1);
        await cluster.WaitConvergedAsync("stale");
        // What a crash before the checksum file's sync leaves: the block is new, its recorded checksum is not. On d0
        // alone at block 3 (the peer vouches for the bytes), on both at block 9 (every mirror holds the same bytes).
        StaleChecksum(cluster, "d0", "stale", 3);
        StaleChecksum(cluster, "d0", "stale", 9);
        StaleChecksum(cluster, "d1", "stale", 9);

        var report = await VerifyAsync(cluster, "stale");
        var found = report.Mismatches.Select(m => (m.Device, m.FirstBlock, m.Blocks, m.Kind, m.Repaired)).Order().ToList();
        Assert.Equal([("d0", 3L, 1, "stale-checksum", true), ("d0", 9L, 1, "stale-checksum", true), ("d1", 9L, 1, "stale-checksum", true)], found);
        var again = await VerifyAsync(cluster, "stale");
        Assert.Empty(again.Mismatches);
        Mirrors.AssertObjectFilesEqual(cluster, "stale", model.Expected());
    }

    [Fact]
    public async Task with_a_verify_interval_the_controller_scrubs_by_itself_and_repairs_what_it_finds()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__VerifyInterval"] = "00:00:02" });
        await cluster.CreateVolumeAsync("cron", BlockSize, 128);
        var model = new VolumeModel(BlockSize, 128);
        model.Record(await cluster.WriteAsync("cron", 0, VolumeModel.Data(1, 128, BlockSize)), 1);
        await cluster.WaitConvergedAsync("cron");
        Corrupt(cluster, "d1", "cron", 77, 2);

        // Nobody asks: a scheduled verify finds the damage and repairs it, and later ones find nothing.
        await Eventually.TrueAsync(async () => await cluster.ScalarAsync("""
                SELECT count(*) FROM {schema}.mt_events WHERE stream_id = 'volume-cron' AND type = 'verify_completed'
                  AND (data->>'bytesRepaired')::bigint = 8192
                """) == 1,
            TimeSpan.FromSeconds(60), () => "no scheduled verify repaired the damage\n" + cluster.Logs());
        await Eventually.TrueAsync(async () => await cluster.ScalarAsync("""
                SELECT count(*) FROM {schema}.mt_events e WHERE stream_id = 'volume-cron' AND type = 'verify_completed'
                  AND jsonb_array_length(data->'mismatches') = 0
                  AND version > (SELECT version FROM {schema}.mt_events WHERE stream_id = 'volume-cron' AND type = 'verify_completed'
                                 AND (data->>'bytesRepaired')::bigint = 8192)
                """) >= 1,
            TimeSpan.FromSeconds(60), () => "no clean scheduled verify followed\n" + cluster.Logs());
        Mirrors.AssertObjectFilesEqual(cluster, "cron", model.Expected());
    }

    /// <summary>Overwrites the checksum recorded for one block with another (nonzero) value, behind the product's back.</summary>
    private static void StaleChecksum(TestCluster cluster, string device, string volume, long block)
    {
        var path = Path.Combine(cluster.DataDirectory(device), $"{volume}.{device}.sum");
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        f.Position = block * 8;
        f.Write(BitConverter.GetBytes(0x0123456789abcdefUL));
        f.Flush(flushToDisk: true);
    }

    /// <summary>Flips every byte of blocks [first, +count) in the device's object file, behind the product's back.</summary>
    private static void Corrupt(TestCluster cluster, string device, string volume, long first, int count)
    {
        var path = Path.Combine(cluster.DataDirectory(device), $"{volume}.{device}.obj");
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        var buffer = new byte[count * BlockSize];
        f.Position = first * BlockSize;
        f.ReadExactly(buffer);
        for (var i = 0; i < buffer.Length; i++) buffer[i] ^= 0x5a;
        f.Position = first * BlockSize;
        f.Write(buffer);
        f.Flush(flushToDisk: true);
    }

    private static async Task<VerifyReport> VerifyAsync(TestCluster cluster, string volume, string query = "")
    {
        using (var r = await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/volumes/{volume}/verify{query}"), null))
            Assert.True(r.StatusCode == HttpStatusCode.Accepted, $"verify of {volume}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
        VerifyReport? report = null;
        await Eventually.TrueAsync(async () =>
            {
                report = await cluster.Http.GetFromJsonAsync<VerifyReport>(new Uri($"{cluster.Controller.Url}/volumes/{volume}/verify"), JsonSerializerOptions.Web);
                return report!.State != "running";
            },
            TimeSpan.FromSeconds(90), () => $"verify of {volume} did not finish: {JsonSerializer.Serialize(report)}\n{cluster.Logs()}");
        return report!;
    }
}
