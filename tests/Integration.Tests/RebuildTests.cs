using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Issue 9, <c>tm rebuild &lt;device&gt;</c>: a device's objects deleted and rebuilt by replaying its log while writes
/// go on, resumable after a kill -9 of the device or the controller, a full copy for what the log no longer holds, and
/// a verify against the peers at the end.
/// </summary>
public sealed class RebuildTests
{
    private const int BlockSize = 4096;

    [Fact]
    public async Task a_device_whose_files_were_damaged_is_rebuilt_from_its_log_alone_while_writes_go_on()
    {
        // One transaction per batch: the replay takes long enough for the requests made while it runs.
        await using var cluster = await TestCluster.StartAsync(
            processEnvironment: p => p == "agent-d0" ? new Dictionary<string, string> { ["Agent__BatchMaxMessages"] = "1" } : []);
        await cluster.CreateVolumeAsync("ra", BlockSize, 1024);
        await cluster.CreateVolumeAsync("rb", BlockSize, 128);
        var ra = new VolumeModel(BlockSize, 1024);
        var rb = new VolumeModel(BlockSize, 128);
        // Small writes: all of them stay in the development broker's 5 MiB partition window, so the log holds its start.
        await new WriteLoad(cluster, "ra", ra, seed: 31).RunAsync(writes: 300, concurrency: 4, maxBlocks: 2);
        await new WriteLoad(cluster, "rb", rb, seed: 32).RunAsync(writes: 100, concurrency: 2, maxBlocks: 2);
        await cluster.WaitConvergedAsync("ra");
        await cluster.WaitConvergedAsync("rb");
        // The device's files are damaged behind the product: one overwritten, one gone. Its peer is intact.
        var damaged = cluster.ObjectFile("d0", "ra");
        damaged.AsSpan(0, 64 * BlockSize).Fill(0x77);
        File.WriteAllBytes(Path.Combine(cluster.DataDirectory("d0"), "ra.d0.obj"), damaged);
        File.Delete(Path.Combine(cluster.DataDirectory("d0"), "rb.d0.obj"));

        // Writes go on through the rebuild, everywhere in the volume.
        using var stop = new CancellationTokenSource();
        var seed = 7_000_000;
        var writer = Task.Run(async () =>
        {
            var rng = new Random(5);
            while (!stop.IsCancellationRequested)
            {
                var n = rng.Next(1, 3);
                var first = rng.NextInt64(0, 1024 - n);
                var s = Interlocked.Increment(ref seed);
                ra.Record(await cluster.WriteAsync("ra", first, VolumeModel.Data(s, n, BlockSize)), s);
                await Task.Delay(20);
            }
        });
        var started = await StartAsync(cluster, "d0");
        Assert.Equal(["ra", "rb"], started.Volumes.Order());
        Assert.All(started.Mirrors, m => Assert.Equal("Rebuilding", m.State));
        // While it runs: a second one is refused, and so is one of the peer (it holds the only in-sync copy now).
        await AssertRefusedAsync(cluster, "d0", HttpStatusCode.Conflict, "rebuild " + started.Id);
        await AssertRefusedAsync(cluster, "d1", HttpStatusCode.Conflict, "no in-sync mirror but the one on d1");
        Assert.Equal(("InSync", "InSync"), (await cluster.MirrorStateAsync("ra", "d1"), await cluster.MirrorStateAsync("rb", "d1")));
        using (var create = await cluster.Http.PostAsJsonAsync(new Uri(cluster.Controller.Url + "/volumes"), new { name = "rc", blockSize = BlockSize, blocks = 8, mirrors = cluster.Devices }))
        {
            Assert.Equal(HttpStatusCode.Conflict, create.StatusCode);
            Assert.Contains("device d0 is being rebuilt", await create.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        var report = await WaitDoneAsync(cluster, "d0");
        await stop.CancelAsync();
        await writer;

        // The replay alone made d0 right: the verify that closes the rebuild found nothing to repair.
        Assert.NotNull(report.Replay);
        Assert.Equal("done", report.Replay!.Phase);
        Assert.False(report.Replay.LogTruncated);
        Assert.InRange(report.Replay.Transactions, 400, long.MaxValue);
        Assert.Equal(2, report.Verifies.Length);
        Assert.All(report.Verifies, v =>
        {
            Assert.Equal("done", v.State);
            Assert.Equal(0, v.RangesSkipped);
            Assert.True(v.Mismatches.Count == 0, $"the verify after the rebuild found {JsonSerializer.Serialize(v.Mismatches)}");
        });
        Assert.Contains(report.Sources, s => s.StartsWith("d0's log, partition 0 offsets 0..", StringComparison.Ordinal));
        Assert.All(report.Mirrors, m => Assert.Equal("InSync", m.State));
        Assert.Equal(2, await cluster.ScalarAsync(
            "SELECT count(*) FROM {schema}.mt_events WHERE type = 'mirror_state_changed' AND data->>'deviceId' = 'd0' AND data->>'state' = 'Rebuilding'"));

        await cluster.WaitConvergedAsync("ra");
        await cluster.WaitConvergedAsync("rb");
        foreach (var (name, model) in new[] { ("ra", ra), ("rb", rb) })
        {
            var expected = model.Expected();
            Mirrors.AssertObjectFilesEqual(cluster, name, expected);
            await Mirrors.AssertReadsEqualAsync(cluster, name, expected, BlockSize);
        }
        // Nothing of the replay was recorded as new: one retirement per write per mirror, and the tag tables are empty.
        await cluster.WaitTagTablesEmptyAsync();
        Assert.Equal(0, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE type = 'tag_recorded' AND data->>'kind' = 'Repair'"));
    }

    [Theory]
    [InlineData("agent")]
    [InlineData("controller")]
    public async Task a_rebuild_killed_in_its_replay_carries_on_after_the_restart_and_ends_identical(string killed)
    {
        // One transaction per batch, so the replay takes seconds and the kill lands inside it (the replay's progress is
        // recorded once a second: 700 transactions were replayed in about one, and the kill often came after the end);
        // one-block writes of 512 bytes, so 2,400 of them keep the log's start in the development broker's 5 MiB window.
        await using var cluster = await TestCluster.StartAsync(
            processEnvironment: p => p == "agent-d0" ? new Dictionary<string, string> { ["Agent__BatchMaxMessages"] = "1" } : []);
        const int blockSize = 512;
        const long blocks = 2048;
        const int logged = 2400;
        await cluster.CreateVolumeAsync("rk", blockSize, blocks);
        var model = new VolumeModel(blockSize, blocks);
        await new WriteLoad(cluster, "rk", model, seed: 41).RunAsync(writes: logged, concurrency: 8, maxBlocks: 1);
        await cluster.WaitConvergedAsync("rk");

        var started = await StartAsync(cluster, "d0");
        var writes = WritesThroughFault.RunAsync(cluster, "rk", model, from: 0, to: blocks, writes: 60, seed: 43);
        // Kill once the device has replayed part of its log and before it is done.
        DeviceRebuildProgress? before = null;
        await Eventually.TrueAsync(async () =>
            {
                before = (await GetAsync(cluster, "d0")).Replay;
                return before is { Phase: "replaying", Transactions: > 0 };
            },
            TimeSpan.FromSeconds(60), () => $"the replay did not begin: {JsonSerializer.Serialize(before)}\n{cluster.Logs()}");
        if (killed == "agent")
        {
            cluster.Agent("d0").Kill();
            var atKill = (await GetAsync(cluster, "d0")).Replay!;
            Assert.True(atKill.CompletedAt is null, "the replay ended before the kill: make it longer");
            await Task.Delay(TimeSpan.FromSeconds(1));
            await cluster.StartAgentAsync("d0");
        }
        else
        {
            await cluster.RestartControllerAsync(kill: true);
        }
        var report = await WaitDoneAsync(cluster, "d0");
        var uncertain = await writes;
        Assert.Equal(started.Id, report.Id);
        Assert.False(report.Replay!.LogTruncated);
        Assert.InRange(report.Replay.Transactions, logged, long.MaxValue);
        var verify = Assert.Single(report.Verifies);
        Assert.True(verify.Mismatches.Count == 0, $"the verify after the rebuild found {JsonSerializer.Serialize(verify.Mismatches)}");
        await cluster.WaitConvergedAsync("rk");
        var image = Mirrors.AssertIdenticalAndAcknowledged(cluster, "rk", model.Expected(), uncertain, blockSize);
        await Mirrors.AssertReadsEqualAsync(cluster, "rk", image, blockSize);
    }

    [Theory]
    [InlineData(50)]
    [InlineData(0)] // no write left to replay (a barrier or two at most): every block comes from the full copy
    public async Task what_the_log_no_longer_holds_comes_from_a_full_copy_and_the_report_says_so(int writesAfter)
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("rt", BlockSize, 512);
        var model = new VolumeModel(BlockSize, 512);
        await new WriteLoad(cluster, "rt", model, seed: 51).RunAsync(writes: 200, concurrency: 4);
        await cluster.WaitConvergedAsync("rt");
        // Retention takes the start of d0's log (the device had applied all of it), then more is written.
        var logStart = DeviceTopic.DeleteAllRecords(cluster, "d0");
        if (writesAfter > 0) await new WriteLoad(cluster, "rt", model, seed: 52).RunAsync(writes: writesAfter, concurrency: 2);
        await cluster.WaitConvergedAsync("rt");
        File.Delete(Path.Combine(cluster.DataDirectory("d0"), "rt.d0.obj"));

        await StartAsync(cluster, "d0");
        var report = await WaitDoneAsync(cluster, "d0");
        Assert.True(report.Replay!.LogTruncated);
        Assert.Equal(logStart, report.Replay.LogStart["0"]);
        if (writesAfter == 0) Assert.Equal(0, report.Replay.Transactions);
        else Assert.InRange(report.Replay.Transactions, writesAfter, long.MaxValue);
        Assert.Contains(report.Sources, s => s.StartsWith("rt: the log no longer held its start, so every block is copied from an in-sync mirror (full copy of 512 blocks from d1", StringComparison.Ordinal));
        var verify = Assert.Single(report.Verifies);
        Assert.True(verify.Mismatches.Count == 0, $"the verify after the rebuild found {JsonSerializer.Serialize(verify.Mismatches)}");
        await cluster.WaitConvergedAsync("rt");
        var expected = model.Expected();
        Mirrors.AssertObjectFilesEqual(cluster, "rt", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "rt", expected, BlockSize);
    }

    [Fact]
    public async Task rebuilds_that_cannot_be_are_refused_with_a_reason_and_change_nothing()
    {
        await using var cluster = await TestCluster.StartAsync();
        await AssertRefusedAsync(cluster, "d0", HttpStatusCode.Conflict, "holds no mirror of any volume");
        await AssertRefusedAsync(cluster, "nope", HttpStatusCode.NotFound, "no device named nope");
        await AssertRefusedAsync(cluster, "D0", HttpStatusCode.BadRequest, "not a device name");
        await AssertRefusedAsync(cluster, "d_0", HttpStatusCode.BadRequest, "not a device name");
        using (var r = await cluster.Http.GetAsync(new Uri($"{cluster.Controller.Url}/devices/d0/rebuild")))
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        Assert.Equal(0, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.rebuilds"));
        // (The only in-sync copy of a volume is never rebuilt: see the first test, which asks for the peer's rebuild.)
    }

    private static async Task<DeviceRebuildReport> StartAsync(TestCluster cluster, string device)
    {
        using var r = await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/devices/{device}/rebuild"), null);
        var body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.Accepted, $"rebuild of {device}: {(int)r.StatusCode} {body}");
        return JsonSerializer.Deserialize<DeviceRebuildReport>(body, JsonSerializerOptions.Web)!;
    }

    private static async Task AssertRefusedAsync(TestCluster cluster, string device, HttpStatusCode status, string reason)
    {
        using var r = await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/devices/{device}/rebuild"), null);
        var body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == status, $"rebuild of {device}: {(int)r.StatusCode} {body}");
        Assert.Contains(reason, body, StringComparison.Ordinal);
    }

    private static async Task<DeviceRebuildReport> GetAsync(TestCluster cluster, string device) =>
        (await cluster.Http.GetFromJsonAsync<DeviceRebuildReport>(new Uri($"{cluster.Controller.Url}/devices/{device}/rebuild"), JsonSerializerOptions.Web))!;

    private static async Task<DeviceRebuildReport> WaitDoneAsync(TestCluster cluster, string device)
    {
        DeviceRebuildReport? report = null;
        await Eventually.TrueAsync(async () =>
            {
                report = await GetAsync(cluster, device);
                return report.Phase is "done" or "failed";
            },
            TimeSpan.FromSeconds(120), () => $"the rebuild of {device} did not end: {JsonSerializer.Serialize(report)}\n{cluster.Logs()}");
        Assert.Equal("done", report!.Phase);
        return report;
    }
}
