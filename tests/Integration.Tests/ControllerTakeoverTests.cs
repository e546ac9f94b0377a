using System.Net;
using System.Net.Http.Json;
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
                model.Record(System.Text.Json.JsonSerializer.Deserialize<WriteAnswer>(await r.Content.ReadAsStringAsync(), System.Text.Json.JsonSerializerOptions.Web)!, s);
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
            appends.Add((System.Text.Json.JsonSerializer.Deserialize<WriteAnswer>(body, System.Text.Json.JsonSerializerOptions.Web)!.FirstBlock, data));
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
}
