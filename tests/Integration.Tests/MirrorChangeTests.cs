using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Issue 9, a volume's shape changed online: attach a mirror (full copy under fences while writes go on, read from
/// once in sync), detach one (never the last in sync), replace one, grow a volume, delete one; kill -9 of the
/// controller and of the new mirror's agent in the middle of an attach and of a replace; the model comparison
/// (object files byte for byte, API reads) after each.
/// </summary>
public sealed class MirrorChangeTests
{
    private const int BlockSize = 4096;
    private static readonly string[] Three = ["d0", "d1", "d2"];

    [Fact]
    public async Task a_mirror_attached_to_a_live_volume_is_copied_to_while_writes_go_on_and_a_detached_one_is_removed()
    {
        // The copy is paced (1 MiB/s over 4 MiB) so that writes and reads run while it is under way.
        await using var cluster = await TestCluster.StartAsync(Three, controllerSettings: new() { ["Controller__ResyncMaxBytesPerSecond"] = "1048576" });
        const long blocks = 1024;
        await cluster.CreateVolumeAsync("at", BlockSize, blocks, mirrors: ["d0", "d1"]);
        var model = new VolumeModel(BlockSize, blocks);
        await new WriteLoad(cluster, "at", model, seed: 61).RunAsync(writes: 200, concurrency: 4);

        using var stop = new CancellationTokenSource();
        var seed = 61_000_000;
        var reads = 0;
        var timings = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var writer = Task.Run(async () =>
        {
            var rng = new Random(62);
            while (!stop.IsCancellationRequested)
            {
                var n = rng.Next(1, 4);
                var first = rng.NextInt64(0, blocks - n);
                var s = Interlocked.Increment(ref seed);
                var t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                model.Record(await cluster.WriteAsync("at", first, VolumeModel.Data(s, n, BlockSize)), s);
                var t1 = System.Diagnostics.Stopwatch.GetTimestamp();
                // Reads go on too, and always see the last acknowledged write: the new mirror is not read from before it is in sync.
                var got = await cluster.ReadAsync("at", first, n);
                Assert.True(got.AsSpan().SequenceEqual(model.Expected().AsSpan((int)first * BlockSize, n * BlockSize)), $"read of [{first}, +{n}) missed a write");
                reads++;
                timings.Enqueue($"w{System.Diagnostics.Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds:0} r{System.Diagnostics.Stopwatch.GetElapsedTime(t1).TotalMilliseconds:0}");
                await Task.Delay(15);
            }
        });
        var attached = await AttachAsync(cluster, "at", "d2");
        var d2 = Assert.Single(attached.Mirrors, m => m.DeviceId == "d2");
        Assert.Equal("NeedsFullCopy", d2.State);
        Assert.Equal(["d0", "d1", "d2"], attached.Mirrors.Select(m => m.DeviceId));
        // Under way: copied to, not in sync yet.
        await Eventually.TrueAsync(async () => (await StatusAsync(cluster, "at")).Mirrors[2].FullCopyDoneBlocks > 0, TimeSpan.FromSeconds(30), cluster.Logs);
        Assert.NotEqual("InSync", await cluster.MirrorStateAsync("at", "d2"));
        await WaitInSyncAsync(cluster, "at", "d2");
        await stop.CancelAsync();
        await writer;
        Assert.True(reads >= 5, $"only {reads} reads ran during the copy (write and read times in ms): {string.Join(" ", timings)}");

        await cluster.WaitConvergedAsync("at");
        var expected = model.Expected();
        Mirrors.AssertObjectFilesEqual(cluster, "at", expected, Three);
        await Mirrors.AssertReadsEqualAsync(cluster, "at", expected, BlockSize);

        // Detach d0: reads come from the others, d0's object is removed from the device.
        var detached = await DetachAsync(cluster, "at", "d0");
        Assert.Equal(["d1", "d2"], detached.Volume.Mirrors.Select(m => m.DeviceId));
        Assert.Equal("at.d0", detached.Removal.ObjectId);
        await Eventually.TrueAsync(() => Task.FromResult(!File.Exists(Path.Combine(cluster.DataDirectory("d0"), "at.d0.obj"))),
            TimeSpan.FromSeconds(30), () => $"d0 still holds its object: {JsonSerializer.Serialize(detached.Removal)}\n{cluster.Logs()}");
        cluster.Agent("d0").Kill(); // nothing of the volume may need it now
        await new WriteLoad(cluster, "at", model, seed: 63).RunAsync(writes: 50, concurrency: 2);
        await cluster.WaitConvergedAsync("at");
        expected = model.Expected();
        Mirrors.AssertObjectFilesEqual(cluster, "at", expected, "d1", "d2");
        await Mirrors.AssertReadsEqualAsync(cluster, "at", expected, BlockSize);
        // The stream says what happened, in order; a restarted controller loads the same shape.
        Assert.Equal(1, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE stream_id = 'volume-at' AND type = 'mirror_attached' AND data->>'deviceId' = 'd2'"));
        Assert.Equal(1, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE stream_id = 'volume-at' AND type = 'mirror_detached' AND data->>'deviceId' = 'd0'"));
        await cluster.RestartControllerAsync(kill: false);
        await cluster.WaitApiHealthyAsync("at");
        Assert.Equal(["d1", "d2"], (await StatusAsync(cluster, "at")).Mirrors.Select(m => m.DeviceId));
        await Mirrors.AssertReadsEqualAsync(cluster, "at", expected, BlockSize);
        await cluster.WaitTagTablesEmptyAsync();
    }

    [Theory]
    [InlineData("attach", "controller")]
    [InlineData("attach", "agent")]
    [InlineData("replace", "controller")]
    [InlineData("replace", "agent")]
    public async Task a_change_killed_in_its_full_copy_carries_on_after_the_restart_and_ends_identical(string operation, string killed)
    {
        // 8 MiB at 2 MiB/s: the copy takes about four seconds, and the kill lands inside it.
        await using var cluster = await TestCluster.StartAsync(Three, controllerSettings: new() { ["Controller__ResyncMaxBytesPerSecond"] = "2097152" });
        const long blocks = 2048;
        await cluster.CreateVolumeAsync("kc", BlockSize, blocks, mirrors: ["d0", "d1"]);
        var model = new VolumeModel(BlockSize, blocks);
        await new WriteLoad(cluster, "kc", model, seed: 71).RunAsync(writes: 300, concurrency: 4);

        if (operation == "attach") await AttachAsync(cluster, "kc", "d2");
        else await ReplaceAsync(cluster, "kc", "d1", "d2");
        var writes = WritesThroughFault.RunAsync(cluster, "kc", model, from: 0, to: blocks, writes: 60, seed: 73);
        await Eventually.TrueAsync(async () => (await StatusAsync(cluster, "kc")).Mirrors.Single(m => m.DeviceId == "d2").FullCopyDoneBlocks > 0,
            TimeSpan.FromSeconds(30), cluster.Logs);
        Assert.NotEqual("InSync", await cluster.MirrorStateAsync("kc", "d2"));
        if (killed == "agent")
        {
            cluster.Agent("d2").Kill();
            await Task.Delay(TimeSpan.FromSeconds(1));
            await cluster.StartAgentAsync("d2");
        }
        else
        {
            await cluster.RestartControllerAsync(kill: true);
        }
        string[] final = operation == "attach" ? Three : ["d0", "d2"];
        VolumeStatus? last = null;
        await Eventually.TrueAsync(async () =>
            {
                last = await StatusAsync(cluster, "kc");
                return last.Mirrors.Select(m => m.DeviceId).SequenceEqual(final) && last.Mirrors.All(m => m.State == "InSync");
            },
            TimeSpan.FromSeconds(120), () => $"{JsonSerializer.Serialize(last?.Mirrors)}\n{cluster.Logs()}");
        var uncertain = await writes;
        await cluster.WaitConvergedAsync("kc");
        var image = Mirrors.AssertIdenticalAndAcknowledged(cluster, "kc", model.Expected(), uncertain, BlockSize, final);
        await Mirrors.AssertReadsEqualAsync(cluster, "kc", image, BlockSize);
        if (operation == "replace")
        {
            await Eventually.TrueAsync(() => Task.FromResult(!File.Exists(Path.Combine(cluster.DataDirectory("d1"), "kc.d1.obj"))),
                TimeSpan.FromSeconds(30), () => "the replaced mirror's object is still on d1\n" + cluster.Logs());
        }
    }

    [Fact]
    public async Task a_paced_copy_holds_no_write_back_while_it_waits_for_its_rate()
    {
        // 128 KiB/s against 512 KiB steps: the first step of the attach's full copy waits about three seconds for its
        // rate. A write to that step's range meanwhile must not wait with it: it is answered while the step is still
        // to be copied. (Before, the step raised its fence and then waited for the rate under it.)
        await using var cluster = await TestCluster.StartAsync(Three, controllerSettings: new() { ["Controller__ResyncMaxBytesPerSecond"] = "131072" });
        await cluster.CreateVolumeAsync("pc", BlockSize, 512, mirrors: ["d0", "d1"]);
        await cluster.WriteAsync("pc", 0, VolumeModel.Data(1, 16, BlockSize));
        await AttachAsync(cluster, "pc", "d2");
        await Task.Delay(TimeSpan.FromSeconds(1)); // the copy has begun its first step (maintenance looks every 250 ms)
        await cluster.WriteAsync("pc", 5, VolumeModel.Data(2, 1, BlockSize));
        var d2 = (await StatusAsync(cluster, "pc")).Mirrors.Single(m => m.DeviceId == "d2");
        Assert.True(d2.FullCopyDoneBlocks == 0 && d2.FullCopyTotalBlocks == 512,
            $"the write waited for the first step of the copy ({d2.FullCopyDoneBlocks} of {d2.FullCopyTotalBlocks} blocks copied when it was answered)");
        await WaitInSyncAsync(cluster, "pc", "d2");
    }

    [Fact]
    public async Task a_removal_that_could_not_reach_its_device_is_sent_again_once_the_log_takes_messages()
    {
        await using var cluster = await TestCluster.StartAsync(Three, controllerSettings: new() { ["Controller__OrphanSweepInterval"] = "00:00:02" });
        await cluster.CreateVolumeAsync("or", BlockSize, 256, mirrors: ["d0", "d1"]);
        var model = new VolumeModel(BlockSize, 256);
        await new WriteLoad(cluster, "or", model, seed: 95).RunAsync(writes: 60, concurrency: 2);
        await AttachAsync(cluster, "or", "d2");
        await WaitInSyncAsync(cluster, "or", "d2");
        var file = Path.Combine(cluster.DataDirectory("d0"), "or.d0.obj");
        Assert.True(File.Exists(file));
        // d0's log takes no message: the detach is made, its removal is not.
        cluster.Kafka.SetBrokerDown(cluster.BrokerOf("d0"));
        var detached = await DetachAsync(cluster, "or", "d0");
        Assert.StartsWith("not removed yet", detached.Removal.Outcome, StringComparison.Ordinal);
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.True(File.Exists(file), "the object went with its log down");
        cluster.Kafka.SetBrokerUp(cluster.BrokerOf("d0"));
        await Eventually.TrueAsync(() => Task.FromResult(!File.Exists(file)), TimeSpan.FromSeconds(60), () => "d0 still holds the detached object\n" + cluster.Logs());
        await cluster.WaitTagTablesEmptyAsync();
        await cluster.WaitConvergedAsync("or");
        Mirrors.AssertObjectFilesEqual(cluster, "or", model.Expected(), "d1", "d2");
        await Mirrors.AssertReadsEqualAsync(cluster, "or", model.Expected(), BlockSize);
    }

    [Fact]
    public async Task changes_that_cannot_be_made_are_refused_with_a_reason_and_change_nothing()
    {
        await using var cluster = await TestCluster.StartAsync(Three, controllerSettings: new() { ["Controller__ResyncMaxBytesPerSecond"] = "262144" });
        await cluster.CreateVolumeAsync("rf", BlockSize, 512, minMirrors: 2, mirrors: ["d0", "d1"]);
        await cluster.WriteAsync("rf", 0, VolumeModel.Data(1, 4, BlockSize));
        var events = await VolumeEventsAsync(cluster, "rf");

        await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/rf/mirrors", new { device = "d1" }, HttpStatusCode.Conflict, "d1 already holds a mirror of rf");
        await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/rf/mirrors", new { device = "d9" }, HttpStatusCode.NotFound, "no device named d9 has registered");
        await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/rf/mirrors", new { device = "D2" }, HttpStatusCode.BadRequest, "device id 'D2' is not valid");
        await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/rf/mirrors", new { }, HttpStatusCode.BadRequest, "device id '' is not valid");
        await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/rf/mirrors", "[1]", HttpStatusCode.BadRequest, "not a JSON object {device}");
        await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/nope/mirrors", new { device = "d2" }, HttpStatusCode.NotFound, "no volume named 'nope'");
        await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/rf/mirrors/d2/replace", new { device = "d0" }, HttpStatusCode.Conflict, "d0 already holds a mirror of rf");
        await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/rf/mirrors/d7/replace", new { device = "d2" }, HttpStatusCode.NotFound, "d7 holds no mirror of rf");
        await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/rf/mirrors/d1/replace", new { device = "d1" }, HttpStatusCode.BadRequest, "cannot replace itself");
        await AssertRefusedAsync(cluster, HttpMethod.Delete, "/volumes/rf/mirrors/d2", null, HttpStatusCode.NotFound, "d2 holds no mirror of rf: mirrors are on d0, d1");
        await AssertRefusedAsync(cluster, HttpMethod.Delete, "/volumes/rf/mirrors/d1", null, HttpStatusCode.Conflict, "rf needs 2 mirrors for a write (minMirrors); detaching d1 would leave 1");
        foreach (var bad in new object[] { new { blocks = 512 }, new { blocks = 100 }, new { blocks = 0 }, new { blocks = -1 }, new { blocks = long.MaxValue }, new { } })
            await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/rf/grow", bad, HttpStatusCode.BadRequest, "");
        await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/rf/grow", "{\"blocks\": \"1024\"}", HttpStatusCode.BadRequest, "blocks is a 64-bit whole number");
        await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/rf/grow", "{\"blocks\": 1e30}", HttpStatusCode.BadRequest, "blocks is a 64-bit whole number");
        await AssertRefusedAsync(cluster, HttpMethod.Delete, "/volumes/nope", null, HttpStatusCode.NotFound, "no volume named 'nope'");
        Assert.Equal(events, await VolumeEventsAsync(cluster, "rf"));
        Assert.Equal(["d0", "d1"], (await StatusAsync(cluster, "rf")).Mirrors.Select(m => m.DeviceId));

        // The only mirror in sync is never detached: with d2 attached and still being copied, d1 may go but then d0 may not.
        await cluster.CreateVolumeAsync("rg", BlockSize, 1024, minMirrors: 1, mirrors: ["d0", "d1"]);
        await cluster.WriteAsync("rg", 0, VolumeModel.Data(2, 4, BlockSize));
        await AttachAsync(cluster, "rg", "d2");
        await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/rg/mirrors/d0/replace", new { device = "d1" }, HttpStatusCode.Conflict, "d1 already holds a mirror");
        await DetachAsync(cluster, "rg", "d1");
        await AssertRefusedAsync(cluster, HttpMethod.Delete, "/volumes/rg/mirrors/d0", null, HttpStatusCode.Conflict, "d0 holds the only mirror of rg in sync");
        Assert.Equal("InSync", await cluster.MirrorStateAsync("rg", "d0"));
    }

    [Fact]
    public async Task a_grown_volume_takes_writes_in_its_new_blocks_and_keeps_its_appends_where_they_were()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("gr", BlockSize, 64);
        var model = new VolumeModel(BlockSize, 256);
        await new WriteLoad(cluster, "gr", model, seed: 81).RunAsync(writes: 40, concurrency: 2, maxBlocks: 2, blocks: 64);
        // Appended blocks 64..71: after the grow they are in the base range, same numbers, same bytes.
        var appended = VolumeModel.Data(82, 8, BlockSize);
        using (var r = await cluster.AppendAsync("gr", appended))
        {
            var answer = (await r.Content.ReadFromJsonAsync<WriteResult>())!;
            Assert.Equal(64, answer.FirstBlock);
            model.Record(answer, 82);
        }
        // Writes go on through the grow.
        using var stop = new CancellationTokenSource();
        var seed = 81_000_000;
        var writer = Task.Run(async () =>
        {
            var rng = new Random(83);
            while (!stop.IsCancellationRequested)
            {
                var first = rng.NextInt64(0, 63);
                var s = Interlocked.Increment(ref seed);
                model.Record(await cluster.WriteAsync("gr", first, VolumeModel.Data(s, 1, BlockSize)), s);
                await Task.Delay(10);
            }
        });
        await Task.Delay(300);
        await AssertRefusedAsync(cluster, HttpMethod.Post, "/volumes/gr/grow", new { blocks = 70 }, HttpStatusCode.BadRequest, "grow it to at least 72 blocks");
        var grown = await SendAsync<VolumeStatus>(cluster, HttpMethod.Post, "/volumes/gr/grow", new { blocks = 256 }, HttpStatusCode.OK);
        Assert.Equal((256L, 0L), (grown.Blocks, grown.ExtensionBlocks));
        await Task.Delay(300);
        await stop.CancelAsync();
        await writer;
        // The new blocks take writes up to the new end; past it is refused.
        await new WriteLoad(cluster, "gr", model, seed: 84).RunAsync(writes: 40, concurrency: 2, maxBlocks: 4, from: 72, blocks: 256);
        using (var past = await cluster.PutBlocksAsync("gr", 255, VolumeModel.Data(85, 2, BlockSize)))
            Assert.Equal(HttpStatusCode.BadRequest, past.StatusCode);
        // An append after the grow lands past the new base range.
        using (var r = await cluster.AppendAsync("gr", VolumeModel.Data(86, 1, BlockSize)))
            Assert.Equal(256, (await r.Content.ReadFromJsonAsync<WriteResult>())!.FirstBlock);

        await cluster.WaitConvergedAsync("gr");
        var expected = model.Expected();
        Mirrors.AssertObjectFilesEqual(cluster, "gr", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "gr", expected, BlockSize);
        Assert.True((await cluster.ReadAsync("gr", 64, 8)).AsSpan().SequenceEqual(appended), "the appended blocks moved");
        await cluster.RestartControllerAsync(kill: true);
        await cluster.WaitApiHealthyAsync("gr");
        var after = await StatusAsync(cluster, "gr");
        Assert.Equal((256L, 1L), (after.Blocks, after.ExtensionBlocks));
        await Mirrors.AssertReadsEqualAsync(cluster, "gr", expected, BlockSize);
    }

    [Fact]
    public async Task a_deleted_volume_is_gone_from_every_device_and_its_name_is_not_taken_again()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("dl", BlockSize, 256);
        await cluster.CreateVolumeAsync("keep", BlockSize, 64);
        var keep = new VolumeModel(BlockSize, 64);
        await new WriteLoad(cluster, "dl", new VolumeModel(BlockSize, 256), seed: 91).RunAsync(writes: 100, concurrency: 4);
        await new WriteLoad(cluster, "keep", keep, seed: 92).RunAsync(writes: 30, concurrency: 2);
        // A writer runs into the delete: its writes end with 404 once the volume is gone, never with a 5xx or a hang.
        var refusedAfter = Task.Run(async () =>
        {
            for (var i = 0; ; i++)
            {
                using var r = await cluster.PutBlocksAsync("dl", i % 256, VolumeModel.Data(93 + i, 1, BlockSize));
                if (r.StatusCode == HttpStatusCode.NotFound) return i;
                Assert.True(r.IsSuccessStatusCode, $"write during the delete: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
            }
        });
        await Task.Delay(300);
        var deleted = await SendAsync<DeleteResult>(cluster, HttpMethod.Delete, "/volumes/dl", null, HttpStatusCode.OK);
        Assert.Equal(["d0", "d1"], deleted.Objects.Select(o => o.Device));
        Assert.All(deleted.Objects, o => Assert.Equal("removed", o.Outcome));
        Assert.InRange(await refusedAfter.WaitAsync(TimeSpan.FromSeconds(30)), 1, int.MaxValue);
        foreach (var d in cluster.Devices)
            Assert.False(File.Exists(Path.Combine(cluster.DataDirectory(d), "dl." + d + ".obj")), $"{d} still holds dl's object");
        using (var r = await cluster.Http.GetAsync(new Uri(cluster.Controller.Url + "/volumes/dl")))
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        using (var r = await cluster.Http.PostAsJsonAsync(new Uri(cluster.Controller.Url + "/volumes"), new { name = "dl", blockSize = BlockSize, blocks = 8, mirrors = cluster.Devices }))
        {
            Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
            Assert.Contains("was deleted; a deleted volume's name is not used again", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        // The other volume is untouched, the tag tables drain (the removal retired the deleted object's entries), and a
        // restarted controller does not bring the volume back.
        await cluster.WaitTagTablesEmptyAsync();
        await cluster.RestartControllerAsync(kill: true);
        await cluster.WaitApiHealthyAsync("keep");
        using (var r = await cluster.Http.GetAsync(new Uri(cluster.Controller.Url + "/volumes/dl")))
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        await Mirrors.AssertReadsEqualAsync(cluster, "keep", keep.Expected(), BlockSize);
        Assert.Equal(0, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.device_objects WHERE object_id LIKE 'dl.%'"));
    }

    private static async Task<VolumeStatus> AttachAsync(TestCluster cluster, string volume, string device) =>
        await SendAsync<VolumeStatus>(cluster, HttpMethod.Post, $"/volumes/{volume}/mirrors", new { device }, HttpStatusCode.Accepted);

    private static async Task<VolumeStatus> ReplaceAsync(TestCluster cluster, string volume, string old, string device) =>
        await SendAsync<VolumeStatus>(cluster, HttpMethod.Post, $"/volumes/{volume}/mirrors/{old}/replace", new { device }, HttpStatusCode.Accepted);

    private static async Task<DetachResult> DetachAsync(TestCluster cluster, string volume, string device) =>
        await SendAsync<DetachResult>(cluster, HttpMethod.Delete, $"/volumes/{volume}/mirrors/{device}", null, HttpStatusCode.OK);

    private static async Task<VolumeStatus> StatusAsync(TestCluster cluster, string volume) =>
        (await cluster.Http.GetFromJsonAsync<VolumeStatus>(new Uri($"{cluster.Controller.Url}/volumes/{volume}"), JsonSerializerOptions.Web))!;

    private static async Task WaitInSyncAsync(TestCluster cluster, string volume, string device)
    {
        VolumeStatus? last = null;
        await Eventually.TrueAsync(async () =>
            {
                last = await StatusAsync(cluster, volume);
                return last.Mirrors.Any(m => m.DeviceId == device && m.State == "InSync");
            },
            TimeSpan.FromSeconds(120), () => $"{JsonSerializer.Serialize(last?.Mirrors)}\n{cluster.Logs()}");
    }

    private static Task<long> VolumeEventsAsync(TestCluster cluster, string volume) =>
        cluster.ScalarAsync($"SELECT count(*) FROM {{schema}}.mt_events WHERE stream_id = 'volume-{volume}'");

    private static HttpRequestMessage Request(TestCluster cluster, HttpMethod method, string path, object? body)
    {
        var request = new HttpRequestMessage(method, new Uri(cluster.Controller.Url + path));
        if (body is string raw) request.Content = new StringContent(raw, Encoding.UTF8, "application/json");
        else if (body is not null) request.Content = JsonContent.Create(body);
        return request;
    }

    private static async Task<T> SendAsync<T>(TestCluster cluster, HttpMethod method, string path, object? body, HttpStatusCode expected)
    {
        using var r = await cluster.Http.SendAsync(Request(cluster, method, path, body));
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == expected, $"{method} {path}: {(int)r.StatusCode} {text}");
        return JsonSerializer.Deserialize<T>(text, JsonSerializerOptions.Web)!;
    }

    private static async Task AssertRefusedAsync(TestCluster cluster, HttpMethod method, string path, object? body, HttpStatusCode status, string reason)
    {
        using var r = await cluster.Http.SendAsync(Request(cluster, method, path, body));
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == status, $"{method} {path} {JsonSerializer.Serialize(body)}: {(int)r.StatusCode} {text}");
        Assert.Contains(reason, text, StringComparison.Ordinal);
    }
}
