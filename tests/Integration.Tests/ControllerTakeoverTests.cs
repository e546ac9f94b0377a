using System.Net;
using System.Net.Http.Json;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Two controllers on one cluster, and two processes with one controller id: one writer per volume at any
/// time, a volume moves only once its owner can no longer acknowledge writes, and nothing acknowledged is lost.
/// </summary>
public sealed class ControllerTakeoverTests
{
    private const int BlockSize = 4096;

    [Fact]
    public async Task a_second_process_with_a_controller_id_that_is_live_is_refused_at_start_and_the_first_goes_on()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("solo", BlockSize, 16);
        var first = await cluster.WriteAsync("solo", 0, VolumeModel.Data(1, 1, BlockSize));

        var twin = cluster.NewController("controller-twin", new() { ["Controller__Id"] = "1" });
        twin.Start();
        Assert.Equal(2, await twin.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("controller id 1 is live in another process", twin.Tail(), StringComparison.Ordinal);

        // The first process kept its epoch and its volume.
        var second = await cluster.WriteAsync("solo", 1, VolumeModel.Data(2, 1, BlockSize));
        Assert.Equal(first.Epoch, second.Epoch);
        Assert.Equal(1, await cluster.ScalarAsync("SELECT epoch FROM {schema}.controller_epochs WHERE controller_id = 1"));
    }

    [Fact]
    public async Task a_volume_moves_to_the_other_controller_only_after_its_owner_cut_off_from_postgres_stopped_acknowledging_and_nothing_is_lost()
    {
        await using var pg = new TcpProxy("127.0.0.1", 5432);
        var lease = new Dictionary<string, string> { ["Controller__LeaseDuration"] = "00:00:03" };
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new(lease)
        {
            // Controller 1 reaches PostgreSQL through a relay the test can cut.
            ["TaggedMirror__Postgres"] = $"Host=127.0.0.1;Port={pg.Port};Username=tm;Password=tm;Database=tm;Timeout=3;Command Timeout=3",
        });
        var other = cluster.NewController("controller-2", new(lease)
        {
            ["Controller__Id"] = "2",
            ["TaggedMirror__Postgres"] = TestCluster.Postgres,
        });
        await cluster.StartControllerAsync(other);
        await cluster.CreateVolumeAsync("va", BlockSize, 64);
        using (var r = await cluster.Http.PostAsJsonAsync(new Uri(other.Url + "/volumes"), new { name = "vb", blockSize = BlockSize, blocks = 64, mirrors = cluster.Devices }))
            Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());

        var va = new VolumeModel(BlockSize, 64);
        var vb = new VolumeModel(BlockSize, 64);
        var seed = 0;
        async Task<HttpStatusCode> WriteAsync(string url, string volume, VolumeModel model, List<(long First, int Seed)> uncertain)
        {
            var s = ++seed;
            var first = s * 5 % 60;
            var content = new ByteArrayContent(VolumeModel.Data(s, 2, BlockSize));
            using var r = await cluster.Http.PutAsync(new Uri($"{url}/volumes/{volume}/blocks/{first}"), content);
            if (r.IsSuccessStatusCode)
                model.Record(System.Text.Json.JsonSerializer.Deserialize<WriteResult>(await r.Content.ReadAsStringAsync(), System.Text.Json.JsonSerializerOptions.Web)!, s);
            else if (r.StatusCode == HttpStatusCode.ServiceUnavailable)
                uncertain.Add((first, s));
            return r.StatusCode;
        }

        var uncertainA = new List<(long, int)>();
        var uncertainB = new List<(long, int)>();
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await WriteAsync(cluster.Controller.Url, "va", va, uncertainA));
            Assert.Equal(HttpStatusCode.OK, await WriteAsync(other.Url, "vb", vb, uncertainB));
        }
        // Controller 1 grows va's extension; controller 2 loaded va at its start, before that.
        var appends = new List<(long First, byte[] Data)>();
        async Task AppendAsync(string url, int blocks)
        {
            var data = VolumeModel.Data(++seed, blocks, BlockSize);
            using var r = await cluster.Http.PostAsync(new Uri($"{url}/volumes/va/append"), new ByteArrayContent(data));
            var body = await r.Content.ReadAsStringAsync();
            Assert.True(r.IsSuccessStatusCode, $"append through {url}: {(int)r.StatusCode} {body}");
            appends.Add((System.Text.Json.JsonSerializer.Deserialize<WriteResult>(body, System.Text.Json.JsonSerializerOptions.Web)!.FirstBlock, data));
        }
        await AppendAsync(cluster.Controller.Url, 3);
        await AppendAsync(cluster.Controller.Url, 2);
        // Each controller writes only its own volume.
        Assert.Equal(HttpStatusCode.Conflict, await WriteAsync(other.Url, "va", va, uncertainA));

        // Controller 1 loses PostgreSQL. It keeps writing va until its renewal deadline, then refuses; only
        // after its lease expired does controller 2 take va over.
        pg.Block();
        var refusedAt = DateTime.MaxValue;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            var code = await WriteAsync(cluster.Controller.Url, "va", va, uncertainA);
            await WriteAsync(other.Url, "vb", vb, uncertainB);
            if (code != HttpStatusCode.OK)
            {
                refusedAt = DateTime.UtcNow;
                break;
            }
        }
        Assert.True(refusedAt < DateTime.MaxValue, "controller 1 went on acknowledging writes without renewing its lease");
        HttpStatusCode moved = HttpStatusCode.Conflict;
        await Eventually.TrueAsync(async () =>
            (moved = await WriteAsync(other.Url, "va", va, uncertainA)) == HttpStatusCode.OK,
            TimeSpan.FromSeconds(30), () => $"controller 2 did not take va over ({moved})\n{other.Tail()}");
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await WriteAsync(other.Url, "va", va, uncertainA));
            Assert.Equal(HttpStatusCode.OK, await WriteAsync(other.Url, "vb", vb, uncertainB));
        }
        // The new owner read va again when it took it: its appends go after controller 1's, not over them.
        await AppendAsync(other.Url, 4);
        Assert.Equal([64L, 67L, 69L], appends.Select(a => a.First));

        // Controller 1 gets PostgreSQL back: va is not its own any more.
        pg.Unblock();
        await Eventually.TrueAsync(async () => await WriteAsync(cluster.Controller.Url, "va", va, uncertainA) == HttpStatusCode.Conflict,
            TimeSpan.FromSeconds(30), () => "controller 1 still takes writes for va");
        Assert.Equal(2, await cluster.ScalarAsync("SELECT controller_id FROM {schema}.volume_leases WHERE volume = 'va'"));
        Assert.True(await cluster.ScalarAsync("SELECT owner_epoch FROM {schema}.volume_leases WHERE volume = 'va'") >= 2);

        foreach (var (name, model, uncertain, url) in new[] { ("va", va, uncertainA, other.Url), ("vb", vb, uncertainB, other.Url) })
        {
            await Eventually.TrueAsync(async () =>
            {
                using var r = await cluster.Http.GetAsync(new Uri($"{url}/volumes/{name}"));
                var s = await r.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
                return s.GetProperty("mirrors").EnumerateArray().All(m => m.GetProperty("state").GetString() == "InSync" && m.GetProperty("liveTagEntries").GetInt64() == 0);
            }, TimeSpan.FromSeconds(90), () => $"{name} did not converge\n{other.Tail()}");
            var files = cluster.Devices.Select(d => cluster.ObjectFile(d, name)).ToArray();
            Assert.True(Mirrors.FirstDifference(files[0], files[1]) < 0, $"the mirrors of {name} differ");
            // Every acknowledged write is there, unless a later write whose answer was lost covers it.
            var expected = model.Expected();
            var image = new byte[expected.Length];
            files[0].AsSpan(0, Math.Min(files[0].Length, image.Length)).CopyTo(image);
            if (name == "va")
            {
                foreach (var (first, data) in appends)
                {
                    foreach (var f in files)
                        Assert.True(f.AsSpan((int)first * BlockSize, data.Length).SequenceEqual(data), $"append at block {first} is missing");
                }
            }
            for (var block = 0; block < 64; block++)
            {
                var got = image.AsSpan(block * BlockSize, BlockSize);
                var acknowledged = expected.AsSpan(block * BlockSize, BlockSize);
                Assert.True(got.SequenceEqual(acknowledged) || uncertain.Any(u => u.Item1 <= block && block < u.Item1 + 2),
                    $"{name}: block {block} lost an acknowledged write");
            }
        }
    }
    /// <summary>Waits until every mirror of <paramref name="volume"/>, as the controller at <paramref name="url"/> sees it, is in sync with an empty tag table.</summary>
    private static Task WaitConvergedThroughAsync(TestCluster cluster, string url, string volume, ServiceProcess owner) =>
        Eventually.TrueAsync(async () =>
        {
            using var r = await cluster.Http.GetAsync(new Uri($"{url}/volumes/{volume}"));
            if (!r.IsSuccessStatusCode) return false;
            var s = await r.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
            return s.GetProperty("mirrors").EnumerateArray().All(m => m.GetProperty("state").GetString() == "InSync" && m.GetProperty("liveTagEntries").GetInt64() == 0)
                && await cluster.LiveEntriesAsync() == 0;
        }, TimeSpan.FromSeconds(90), () => $"{volume} did not converge\n{owner.Tail()}\n{cluster.Logs()}");

    /// <summary>
    /// A controller paused past its lease wakes to a bus message or a timer with its old view of the volume. Found
    /// by the overlapping schedules: it recorded a mirror state in the volume's stream before the new owner had
    /// written there (the stream version alone matched), and the new owner's next append then failed (500). The
    /// lease itself is moved here, as a takeover moves it, so the old owner still believes its lease good.
    /// </summary>
    [Fact]
    public async Task a_controller_whose_lease_passed_to_another_records_nothing_more_in_the_volumes_stream()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new()
        {
            ["Controller__LeaseDuration"] = "00:01:00",
            ["Controller__DeliveryTimeout"] = "00:00:01.500",
        });
        await cluster.CreateVolumeAsync("vs", BlockSize, 16);
        await cluster.WriteAsync("vs", 0, VolumeModel.Data(1, 1, BlockSize));
        const string version = "SELECT version FROM {schema}.mt_streams WHERE id = 'volume-vs'";
        var before = await cluster.ScalarAsync(version);
        await WriteAfterTheLeaseMovedAsync(cluster, "vs");
        Assert.Equal(before, await cluster.ScalarAsync(version));
        // And it knows now: the next request is sent to the owner.
        using (var r = await cluster.PutBlocksAsync("vs", 2, VolumeModel.Data(3, 1, BlockSize)))
            Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
    }

    /// <summary>
    /// Moves the volume's lease to controller 2 in PostgreSQL, as a takeover moves it (controller 1 still believes its
    /// lease good), then sends controller 1 a write to block 1 whose copy to d1 cannot be delivered: the old owner
    /// records d1 as degraded, a record the lease check refuses. The write is not acknowledged.
    /// </summary>
    private static async Task WriteAfterTheLeaseMovedAsync(TestCluster cluster, string volume)
    {
        await cluster.ScalarAsync(
            "UPDATE {schema}.volume_leases SET controller_id = 2, epoch = 1, owner_epoch = owner_epoch + 1, expires_at = now() + interval '1 hour' WHERE volume = @v",
            ("v", volume));
        cluster.Kafka.SetBrokerDown(cluster.BrokerOf("d1"));
        try
        {
            using var r = await cluster.PutBlocksAsync(volume, 1, VolumeModel.Data(2, 1, BlockSize));
            Assert.False(r.IsSuccessStatusCode, "a write was acknowledged by a controller that no longer holds the volume's lease");
        }
        finally
        {
            cluster.Kafka.SetBrokerUp(cluster.BrokerOf("d1"));
        }
    }

    /// <summary>
    /// The same, when what the old owner learns first is its refused record (the degrade of a mirror whose copy failed),
    /// not its next lease round: the volume is no longer its, and its writes still waiting for a mirror must be let go
    /// (never acknowledged), or they and their bytes in the devices' backlogs stay for as long as the process lives.
    /// Found by the overlapping schedules (a stalled owner resumed into a truncation notice: "writes still in flight").
    /// The lease round is held back by a lock on the volume catalog it reads first, so the refused record comes first.
    /// </summary>
    [Fact]
    public async Task a_controller_that_learns_from_a_refused_record_that_its_lease_passed_lets_go_of_its_writes_in_flight()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new()
        {
            ["Controller__LeaseDuration"] = "00:00:30",
            ["Controller__DeliveryTimeout"] = "00:00:01.500",
        });
        await cluster.CreateVolumeAsync("lg", BlockSize, 16);
        await cluster.WriteAsync("lg", 0, VolumeModel.Data(1, 1, BlockSize));
        await cluster.WaitTagTablesEmptyAsync();
        // d0 takes its copy of the next write into its log but applies nothing: the write waits for it.
        await cluster.Agent("d0").StopAsync();

        await using (var conn = await cluster.DataSource.OpenConnectionAsync())
        await using (var tx = await conn.BeginTransactionAsync())
        {
            await using (var hold = new Npgsql.NpgsqlCommand($"LOCK TABLE {cluster.Schema}.volume_catalog IN ACCESS EXCLUSIVE MODE", conn, tx))
                await hold.ExecuteNonQueryAsync();
            await WriteAfterTheLeaseMovedAsync(cluster, "lg");
            // It learnt it from the refused record, its lease round being held: the next write is sent to the owner.
            using (var r = await cluster.PutBlocksAsync("lg", 2, VolumeModel.Data(3, 1, BlockSize)))
                Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
            Assert.Equal(1, (await cluster.ControllerInfoAsync()).GetProperty("inflight").GetInt32());
            await tx.CommitAsync();
        }

        // Its next lease rounds (every 10 s) let the write go, though d0 never applies it.
        await Eventually.TrueAsync(async () => (await cluster.ControllerInfoAsync()).GetProperty("inflight").GetInt32() == 0,
            TimeSpan.FromSeconds(40), () => $"the write sent after the lease passed is still in flight on the old owner\n{cluster.Controller.Tail()}");
    }

    [Fact]
    public async Task a_write_its_stalled_owner_sends_after_the_volume_moved_is_refused_by_every_mirror_and_the_new_owners_write_survives()
    {
        // Controller 1 stalls a write to block 40 between its lease check and sending it (a paused process), and
        // loses PostgreSQL meanwhile; controller 2 takes the volume and writes the same blocks. When controller 1
        // wakes it sends its stale copies: without owner fencing they land after controller 2's and overwrite them.
        await using var pg = new TcpProxy("127.0.0.1", 5432);
        var lease = new Dictionary<string, string> { ["Controller__LeaseDuration"] = "00:00:03" };
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new(lease)
        {
            ["TaggedMirror__Postgres"] = $"Host=127.0.0.1;Port={pg.Port};Username=tm;Password=tm;Database=tm;Timeout=3;Command Timeout=3",
            ["Controller__Faults__StallWriteAtBlock"] = "40",
            ["Controller__Faults__StallFor"] = "00:00:14",
        });
        var other = cluster.NewController("controller-2", new(lease)
        {
            ["Controller__Id"] = "2",
            ["TaggedMirror__Postgres"] = TestCluster.Postgres,
            ["Controller__Faults__StallWriteAtBlock"] = "-1",
        });
        await cluster.StartControllerAsync(other);
        await cluster.CreateVolumeAsync("vf", BlockSize, 64);
        var before = VolumeModel.Data(1, 2, BlockSize);
        await cluster.WriteAsync("vf", 20, before);

        var stale = VolumeModel.Data(2, 2, BlockSize);
        var stalled = cluster.Http.PutAsync(new Uri($"{cluster.Controller.Url}/volumes/vf/blocks/40"), new ByteArrayContent(stale));
        await Task.Delay(500);
        pg.Block();

        var fresh = VolumeModel.Data(3, 2, BlockSize);
        var code = HttpStatusCode.Conflict;
        await Eventually.TrueAsync(async () =>
        {
            using var r = await cluster.Http.PutAsync(new Uri($"{other.Url}/volumes/vf/blocks/40"), new ByteArrayContent(fresh));
            code = r.StatusCode;
            return r.IsSuccessStatusCode;
        }, TimeSpan.FromSeconds(12), () => $"controller 2 did not take vf over before the stalled write woke ({code})\n{other.Tail()}");
        Assert.False(stalled.IsCompleted, "the stalled write finished before controller 2 wrote: the test did not interleave as meant");

        // The stalled write is never acknowledged: its owner's lease ran out while it stalled.
        using (var answer = await stalled)
            Assert.False(answer.IsSuccessStatusCode, $"the stalled write was acknowledged: {(int)answer.StatusCode}");
        pg.Unblock();

        // The new owner's write is what both mirrors hold; both devices refused the stale copies, and recorded why.
        // First every device consumes its log to the end as of now: the stale copies were sent before the answer.
        foreach (var d in cluster.Devices)
        {
            var end = DeviceTopic.LogEnd(cluster, d);
            await Eventually.TrueAsync(async () => await cluster.AgentNextOffsetAsync(d) >= end, TimeSpan.FromSeconds(30),
                () => $"{d} did not consume its log to offset {end}\n{cluster.Logs()}");
        }
        await WaitConvergedThroughAsync(cluster, other.Url, "vf", other);
        foreach (var d in cluster.Devices)
        {
            var file = cluster.ObjectFile(d, "vf");
            Assert.True(file.AsSpan(40 * BlockSize, 2 * BlockSize).SequenceEqual(fresh), $"{d}: the new owner's acknowledged write to block 40 was overwritten");
            Assert.True(file.AsSpan(20 * BlockSize, 2 * BlockSize).SequenceEqual(before), $"{d}: the first owner's acknowledged write to block 20 is gone");
        }
        Assert.Equal(2, await cluster.ScalarAsync(
            "SELECT count(*) FROM {schema}.mt_events WHERE type = 'transaction_quarantined' AND data->>'reason' LIKE 'fenced:%'"));
    }

    [Fact]
    public async Task a_write_its_dead_owner_sent_to_one_mirror_only_reaches_the_other_through_the_new_owner_though_the_dead_one_never_returns()
    {
        // Controller 1 dies between the two copies of its sixth write and never comes back: only its fence-less
        // epoch holds that write's fate. Controller 2 takes the volume; its fence closes controller 1's writes on
        // every mirror, so reconciliation copies the half-sent write to the mirror that lacks it.
        var lease = new Dictionary<string, string> { ["Controller__LeaseDuration"] = "00:00:03" };
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new(lease)
        {
            ["Controller__Faults__StopAfterFirstCopyOfWrite"] = "6",
            ["Controller__RetireMatchedAfter"] = "00:00:01",
        });
        var other = cluster.NewController("controller-2", new(lease) { ["Controller__Id"] = "2", ["Controller__Faults__StopAfterFirstCopyOfWrite"] = "0" });
        await cluster.StartControllerAsync(other);
        await cluster.CreateVolumeAsync("vd", BlockSize, 64);
        var model = new VolumeModel(BlockSize, 64);
        for (var i = 1; i <= 5; i++)
            model.Record(await cluster.WriteAsync("vd", i * 4, VolumeModel.Data(i, 2, BlockSize)), i);
        var half = VolumeModel.Data(6, 3, BlockSize);
        try
        {
            using var r = await cluster.PutBlocksAsync("vd", 50, half);
            Assert.Fail($"the controller answered the write it was to die in: {(int)r.StatusCode}");
        }
        catch (HttpRequestException)
        {
        }
        await cluster.Controller.WaitForExitAsync(TimeSpan.FromSeconds(30));
        await Eventually.TrueAsync(() => Task.FromResult(cluster.ObjectFile(cluster.Devices[0], "vd") is { Length: >= 53 * BlockSize } f
                && f.AsSpan(50 * BlockSize, 3 * BlockSize).SequenceEqual(half)),
            TimeSpan.FromSeconds(30), () => "the first copy of the half-sent write did not reach the first mirror\n" + cluster.Logs());

        // Controller 2 takes vd over once controller 1's lease expired, and goes on writing it.
        await Eventually.TrueAsync(async () =>
        {
            using var r = await cluster.Http.PutAsync(new Uri($"{other.Url}/volumes/vd/blocks/0"), new ByteArrayContent(VolumeModel.Data(7, 1, BlockSize)));
            return r.IsSuccessStatusCode;
        }, TimeSpan.FromSeconds(30), () => "controller 2 did not take vd over\n" + other.Tail());

        await WaitConvergedThroughAsync(cluster, other.Url, "vd", other);
        var files = cluster.Devices.Select(d => cluster.ObjectFile(d, "vd")).ToArray();
        Assert.True(Mirrors.FirstDifference(files[0], files[1]) < 0, "the mirrors of vd differ");
        Assert.True(files[1].Length >= 53 * BlockSize && files[1].AsSpan(50 * BlockSize, 3 * BlockSize).SequenceEqual(half),
            "the half-sent write was not copied to the second mirror");
        var expected = model.Expected();
        for (var block = 4; block < 24; block++)
        {
            Assert.True(files[1].AsSpan(block * BlockSize, BlockSize).SequenceEqual(expected.AsSpan(block * BlockSize, BlockSize)),
                $"block {block} lost an acknowledged write");
        }
    }
}
