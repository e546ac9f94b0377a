using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;
using TaggedMirror.Nbd.Tests.Support;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Provenance (issue #12): each write's principal travels with its tag to every mirror, and
/// <c>GET /volumes/{name}/blocks/{block}/writer</c> answers who last wrote a block, with which tag, and which mirrors
/// applied it — through overwrites, a mirror that missed the write and was resynced, NBD writes, and a rebuild.
/// </summary>
public sealed class BlockWritersTests
{
    private const int BlockSize = 4096;
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    [Fact]
    public async Task each_block_names_its_last_writer_tag_and_mirrors_through_overwrites_a_missed_write_and_a_rebuild()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__DeliveryTimeout"] = "00:00:02" });
        await cluster.CreateVolumeAsync("prov", BlockSize, 64);
        var alice = await CreateKeyAsync(cluster, "prov");
        var bob = await CreateKeyAsync(cluster, "prov");

        // Alice writes blocks 0-3 in one write, then Bob overwrites block 2 only.
        var a = await WriteAsync(cluster, alice.Key, "prov", 0, 4);
        var b = await WriteAsync(cluster, bob.Key, "prov", 2, 1);
        var block2 = await cluster.WritersAsync("prov", 2);
        AssertLastWrite(block2, b.Tag, "key:" + bob.Info.Id, 2, 1, ["d0", "d1"]);
        Assert.All(block2.Mirrors, m => Assert.Equal("last-write", m.Holds));
        foreach (var n in new long[] { 0, 1, 3 })
            AssertLastWrite(await cluster.WritersAsync("prov", n), a.Tag, "key:" + alice.Info.Id, 0, 4, ["d0", "d1"]);
        var never = await cluster.WritersAsync("prov", 4);
        Assert.Null(never.LastWrite);
        Assert.All(never.Mirrors, m => Assert.Equal(("none", (BlockWrite?)null), (m.Holds, m.Write)));

        // d1 misses Alice's next write to block 5 (its log is down): the answer says so until the resync has copied it.
        cluster.Kafka.SetBrokerDown(cluster.BrokerOf("d1"));
        var missed = await WriteAsync(cluster, alice.Key, "prov", 5, 1);
        Assert.Equal("Degraded", await cluster.MirrorStateAsync("prov", "d1"));
        var block5 = await cluster.WritersAsync("prov", 5);
        AssertLastWrite(block5, missed.Tag, "key:" + alice.Info.Id, 5, 1, ["d0"]);
        Assert.Equal("none", block5.Mirrors.Single(m => m.Device == "d1").Holds);
        cluster.Kafka.SetBrokerUp(cluster.BrokerOf("d1"));
        await cluster.WaitConvergedAsync("prov");
        block5 = await cluster.WritersAsync("prov", 5);
        AssertLastWrite(block5, missed.Tag, "key:" + alice.Info.Id, 5, 1, ["d0"]);
        var copied = block5.Mirrors.Single(m => m.Device == "d1");
        Assert.True(copied.Holds == "copy" && copied.Write is { Kind: "repair", Principal: null },
            $"d1 after its resync: {JsonSerializer.Serialize(copied)}");

        // A rebuild of d0 from its log writes its rows again from the replay: the same answers.
        using (var r = await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/devices/d0/rebuild"), null))
            Assert.True(r.StatusCode == HttpStatusCode.Accepted, await r.Content.ReadAsStringAsync());
        await Eventually.TrueAsync(async () =>
            {
                using var r = await cluster.Http.GetAsync(new Uri($"{cluster.Controller.Url}/devices/d0/rebuild"));
                return (await r.Content.ReadFromJsonAsync<DeviceRebuildReport>(Json))!.Phase is "done" or "failed";
            },
            TimeSpan.FromSeconds(120), () => "the rebuild of d0 did not end\n" + cluster.Logs());
        await cluster.WaitConvergedAsync("prov");
        AssertLastWrite(await cluster.WritersAsync("prov", 2), b.Tag, "key:" + bob.Info.Id, 2, 1, ["d0", "d1"]);
        AssertLastWrite(await cluster.WritersAsync("prov", 0), a.Tag, "key:" + alice.Info.Id, 0, 4, ["d0", "d1"]);
        Assert.Equal("last-write", (await cluster.WritersAsync("prov", 5)).Mirrors.Single(m => m.Device == "d0").Holds);
    }

    [Fact]
    public async Task an_nbd_client_is_named_by_its_address_and_bad_block_numbers_are_refused_with_a_sentence()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("nbdprov", BlockSize, 64);
        await Tool.CheckAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5a 12k 4k", cluster.NbdUri("nbdprov"));
        await Eventually.TrueAsync(async () => (await cluster.WritersAsync("nbdprov", 3)).LastWrite?.AppliedBy.Length == 2,
            TimeSpan.FromSeconds(30), () => "both mirrors never recorded the NBD write");
        var w = (await cluster.WritersAsync("nbdprov", 3)).LastWrite!;
        Assert.Equal(("nbd:127.0.0.1", "write", 3L, 1), (w.Principal, w.Kind, w.FirstBlock, w.BlockCount));

        foreach (var (block, expected) in new[] { ("-1", "is not a whole number from 0 to 63"), ("64", "is not a whole number from 0 to 63"),
                     ("9223372036854775807", "from 0 to 63"), ("99999999999999999999", "from 0 to 63"), ("x", "'x'") })
        {
            using var r = await cluster.Http.GetAsync(new Uri($"{cluster.Controller.Url}/volumes/nbdprov/blocks/{block}/writer"));
            var body = await r.Content.ReadAsStringAsync();
            Assert.True(r.StatusCode == HttpStatusCode.BadRequest && body.Contains(expected, StringComparison.Ordinal), $"block {block}: {(int)r.StatusCode} {body}");
        }
        using (var r = await cluster.Http.GetAsync(new Uri($"{cluster.Controller.Url}/volumes/nope/blocks/0/writer")))
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
    }

    private static void AssertLastWrite(BlockWriters answer, string tag, string principal, long first, int count, string[] appliedBy)
    {
        var w = answer.LastWrite;
        Assert.True(w is not null && w.Tag == tag && w.Principal == principal && w.FirstBlock == first && w.BlockCount == count
                && w.Kind == "write" && w.AppliedBy.Order().SequenceEqual(appliedBy),
            $"block {answer.Block}: expected {tag} by {principal} on {string.Join(",", appliedBy)}, got {JsonSerializer.Serialize(answer)}");
    }

    /// <summary>A write with <paramref name="key"/>, waited for on every mirror it was sent to.</summary>
    private static async Task<WriteResult> WriteAsync(TestCluster cluster, string key, string volume, long first, int blocks) =>
        await TryWriteAsync(cluster, key, volume, first, blocks) ?? throw new InvalidOperationException($"the write to {volume}/{first} was refused");

    private static async Task<WriteResult?> TryWriteAsync(TestCluster cluster, string key, string volume, long first, int blocks)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var content = new ByteArrayContent(VolumeModel.Data(Random.Shared.Next(), blocks, BlockSize));
        using var r = await http.PutAsync(new Uri($"{cluster.Controller.Url}/volumes/{volume}/blocks/{first}?wait=applied"), content);
        return r.IsSuccessStatusCode ? await r.Content.ReadFromJsonAsync<WriteResult>(Json) : null;
    }

    private static async Task<CreatedKey> CreateKeyAsync(TestCluster cluster, string volume)
    {
        using var r = await cluster.Http.PostAsJsonAsync(new Uri(cluster.Controller.Url + "/keys"), new CreateKeyRequest(AccessRoles.Producer, [volume]), Json);
        Assert.True(r.StatusCode == HttpStatusCode.Created, await r.Content.ReadAsStringAsync());
        return (await r.Content.ReadFromJsonAsync<CreatedKey>(Json))!;
    }

    /// <summary>
    /// Each batch prunes the rows its writes cover by one index range scan per write, on a table PostgreSQL has never
    /// analyzed (every new device's, for its first minute). Without a fence the planner took the primary key's
    /// (device, object) prefix and read every row of the object for each write: the agents' PostgreSQL time grew with
    /// the object's rows (docs/benchmarks.md, "The covered rows' index"). Counted by the server's own statistics.
    /// </summary>
    [Fact]
    public async Task pruning_covered_rows_reads_the_written_ranges_only_not_every_row_of_the_object()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("cover", BlockSize, 4096);
        var next = 0;
        async Task WriteManyAsync(int writes)
        {
            // Eight in flight, so the devices' batches hold several writes each; every write to blocks not written before.
            for (var done = 0; done < writes; done += 8)
                await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => cluster.WriteAsync("cover", Interlocked.Increment(ref next) * 2, VolumeModel.Data(next, 1, BlockSize))));
        }
        async Task<(long PrimaryKeyRowsRead, long CoverScans)> CountersAfterAsync(long rows)
        {
            // Backends report their counts at most once a second, and an idle one after ten.
            await Eventually.TrueAsync(async () => await cluster.ScalarAsync(
                    "SELECT n_tup_ins FROM pg_stat_user_tables WHERE schemaname = @s AND relname = 'block_writes'", ("s", cluster.Schema)) >= rows,
                TimeSpan.FromSeconds(60), () => $"the statistics never counted {rows} rows inserted into block_writes");
            return (await cluster.ScalarAsync("SELECT idx_tup_read FROM pg_stat_user_indexes WHERE schemaname = @s AND indexrelname = 'block_writes_pkey'", ("s", cluster.Schema)),
                await cluster.ScalarAsync("SELECT idx_scan FROM pg_stat_user_indexes WHERE schemaname = @s AND indexrelname = 'block_writes_cover'", ("s", cluster.Schema)));
        }

        await WriteManyAsync(400);
        var before = await CountersAfterAsync(2 * 400);
        await WriteManyAsync(200);
        var after = await CountersAfterAsync(2 * 600);

        // 400 pruning lookups (200 writes, two mirrors) over objects of 800 to 1,200 rows: reading every row of the
        // object each time is hundreds of thousands of rows; one range each reads next to none.
        var read = after.PrimaryKeyRowsRead - before.PrimaryKeyRowsRead;
        Assert.True(read < 2 * 200, $"the primary key of block_writes read {read} rows during 200 writes");
        Assert.True(after.CoverScans - before.CoverScans >= 2 * 200, $"block_writes_cover was scanned {after.CoverScans - before.CoverScans} times for 200 writes on two mirrors");
    }
}
