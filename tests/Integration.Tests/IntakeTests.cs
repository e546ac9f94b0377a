using System.Text;
using Confluent.Kafka;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Contracts.Intake;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.IntakeClient;
using TaggedMirror.Integration.Tests.Harness;
using Xunit.Abstractions;

namespace TaggedMirror.Integration.Tests;

/// <summary>Producers that publish writes (issue #10): the intake topic, its outcomes, and writing each request once.</summary>
public sealed class IntakeTests(ITestOutputHelper output)
{
    private const int BlockSize = 4096;

    private static IntakeProducer Producer(TestCluster cluster, string id = "p1", TimeSpan? timeout = null, string? key = null) => IntakeProducer.Create(new IntakeProducerOptions
    {
        BootstrapServers = cluster.Kafka.BootstrapServers,
        ProducerId = id,
        Key = key ?? cluster.OperatorKey,
        Timeout = timeout ?? TimeSpan.FromSeconds(60),
    }, TimeSpan.FromSeconds(60));

    [Fact]
    public async Task overlapping_requests_are_applied_in_the_order_they_were_published()
    {
        await using var cluster = await TestCluster.StartAsync();
        const long blocks = 32;
        await cluster.CreateVolumeAsync("order", BlockSize, blocks);
        using var producer = Producer(cluster);
        var image = new byte[blocks * BlockSize];
        var ids = new List<string>();
        for (var i = 0; i < 60; i++)
        {
            // Every request overlaps the ones before and after it: only the publishing order gives the right bytes.
            var first = i * 3 % 24;
            var data = VolumeModel.Data(1000 + i, 8, BlockSize);
            data.CopyTo(image, first * BlockSize);
            var id = "order-" + i;
            ids.Add(id);
            await producer.PublishOnlyAsync("order", first, data, id);
        }
        var outcomes = new List<IntakeOutcome>();
        foreach (var id in ids) outcomes.Add(await producer.WaitOutcomeAsync(id, TimeSpan.FromSeconds(60)));
        Assert.All(outcomes, o => Assert.True(o.Ok, o.Refusal));
        Assert.All(outcomes, o => Assert.Equal(2, o.MirrorsHolding));
        // Tagged in the order published: one controller, one epoch, rising sequences.
        var seqs = outcomes.Select(o => long.Parse(o.Tag!.Split(':')[2], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(seqs.Order().ToList(), seqs);

        await cluster.WaitConvergedAsync("order");
        Mirrors.AssertObjectFilesEqual(cluster, "order", image);
        await Mirrors.AssertReadsEqualAsync(cluster, "order", image, BlockSize);
    }

    [Fact]
    public async Task a_request_published_again_after_a_timeout_is_answered_with_its_first_outcome_and_written_once()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("dup", BlockSize, 64);
        using var producer = Producer(cluster);
        var first = VolumeModel.Data(1, 2, BlockSize);
        var o1 = await producer.PublishAsync("dup", 10, first, "r-1");
        Assert.True(o1.Ok, o1.Refusal);
        // The retry carries other bytes (a confused producer): the request id alone decides, nothing is written.
        var o2 = await producer.PublishAsync("dup", 10, VolumeModel.Data(2, 2, BlockSize), "r-1");
        Assert.Equal(o1, o2);
        await Eventually.TrueAsync(() => Task.FromResult(producer.Received.Count(o => o.RequestId == "r-1") == 2), TimeSpan.FromSeconds(10), () => "two outcomes");
        Assert.All(producer.Received.Where(o => o.RequestId == "r-1"), o => Assert.Equal(o1, o));

        await cluster.WaitConvergedAsync("dup");
        Assert.Equal(1, await cluster.ScalarAsync(
            "SELECT count(DISTINCT data->'tag'->>'seq') FROM {schema}.mt_events WHERE type = 'tag_recorded' AND data->>'requestId' = 'p1/r-1'"));
        Assert.Equal(2, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE type = 'tag_recorded' AND data->>'requestId' = 'p1/r-1'"));
        Assert.Equal(first, await cluster.ReadAsync("dup", 10, 2));
    }

    [Fact]
    public async Task a_request_id_answered_longer_ago_than_the_retention_is_forgotten_and_a_request_with_it_is_new()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new()
        {
            ["Controller__IntakeRequestRetention"] = "00:00:05",
            ["Controller__EventPruneInterval"] = "00:00:01",
        });
        await cluster.CreateVolumeAsync("exp", BlockSize, 64);
        using var producer = Producer(cluster);
        var first = VolumeModel.Data(1, 2, BlockSize);
        var o1 = await producer.PublishAsync("exp", 10, first, "r-1");
        Assert.True(o1.Ok, o1.Refusal);
        // Within the retention: the same id is answered with its first outcome, nothing written.
        Assert.Equal(o1, await producer.PublishAsync("exp", 10, VolumeModel.Data(2, 2, BlockSize), "r-1"));
        Assert.Equal(first, await cluster.ReadAsync("exp", 10, 2));

        // Answered more than 5 s ago: the controller's pruning forgets it, and the same id is a new request.
        await Eventually.TrueAsync(async () => await cluster.ScalarAsync("SELECT count(*) FROM {schema}.intake_requests WHERE request_id = 'r-1'") == 0,
            TimeSpan.FromSeconds(60), () => "the answered request id was not forgotten\n" + cluster.Logs());
        var third = VolumeModel.Data(3, 2, BlockSize);
        // Published by a new client of the same producer id (one client answers an id it has seen from what it received).
        using var later = Producer(cluster);
        var o3 = await later.PublishAsync("exp", 10, third, "r-1");
        Assert.True(o3.Ok, o3.Refusal);
        Assert.NotEqual(o1.Tag, o3.Tag);
        Assert.Equal(third, await cluster.ReadAsync("exp", 10, 2));
    }

    [Fact]
    public async Task a_controller_killed_mid_batch_answers_every_request_once_and_writes_each_once()
    {
        // SIGKILL after the first copy of write 70: a batch is under way, its requests recorded pending, some written
        // and answered, one in d0's log only, the rest not sent.
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new()
        {
            ["Controller__Faults__StopAfterFirstCopyOfWrite"] = "70",
            ["Controller__RetireMatchedAfter"] = "00:00:01",
        });
        const long blocks = 64;
        const int requests = 200;
        await cluster.CreateVolumeAsync("kill", BlockSize, blocks);
        using var producer = Producer(cluster, timeout: TimeSpan.FromSeconds(120));
        var image = new byte[blocks * BlockSize];
        var random = new Random(7);
        for (var i = 0; i < requests; i++)
        {
            var n = random.Next(1, 9);
            var first = random.Next(0, (int)blocks - n + 1);
            var data = VolumeModel.Data(5000 + i, n, BlockSize);
            data.CopyTo(image, first * BlockSize);
            await producer.PublishOnlyAsync("kill", first, data, "k-" + i);
        }
        await cluster.Controller.WaitForExitAsync(TimeSpan.FromSeconds(60));
        var before = producer.Received.Select(o => o.RequestId).Distinct().Count();
        Assert.InRange(before, 1, requests - 1);
        cluster.Controller.SetEnvironment("Controller__Faults__StopAfterFirstCopyOfWrite", null);
        await cluster.StartControllerAsync();

        for (var i = 0; i < requests; i++)
        {
            var o = await producer.WaitOutcomeAsync("k-" + i, TimeSpan.FromSeconds(120));
            Assert.True(o.Ok, $"k-{i}: {o.Refusal}");
        }
        // Every outcome published for a request is the same one.
        foreach (var g in producer.Received.GroupBy(o => o.RequestId))
            Assert.True(g.Distinct().Count() == 1, $"{g.Key}: different outcomes {string.Join(" | ", g.Distinct())}");
        await cluster.WaitConvergedAsync("kill", TimeSpan.FromSeconds(120));
        // Written once: one tag per request in every device's tag table, and every request written.
        Assert.Equal(requests, await cluster.ScalarAsync(
            "SELECT count(DISTINCT data->>'requestId') FROM {schema}.mt_events WHERE type = 'tag_recorded' AND data->>'requestId' LIKE 'p1/k-%'"));
        Assert.Equal(0, await cluster.ScalarAsync("""
            SELECT count(*) FROM (SELECT data->>'requestId' FROM {schema}.mt_events
                WHERE type = 'tag_recorded' AND data->>'requestId' LIKE 'p1/k-%'
                GROUP BY 1 HAVING count(DISTINCT concat_ws(':', data->'tag'->>'controllerId', data->'tag'->>'epoch', data->'tag'->>'seq')) <> 1) AS twice
            """));
        Mirrors.AssertObjectFilesEqual(cluster, "kill", image);
        await Mirrors.AssertReadsEqualAsync(cluster, "kill", image, BlockSize);
        output.WriteLine($"{before} requests answered before the kill\n{cluster.Logs()}");
    }

    [Fact]
    public async Task a_volume_taken_over_after_its_owner_died_mid_batch_has_every_request_answered_once_by_the_new_owner()
    {
        // Controller 1 owns the volume and dies after the first copy of write 30; it never comes back. Controller 2,
        // which reads the intake too but skips the volume's requests, takes the volume once the lease expired, goes back
        // to the volume's recorded position and settles the requests controller 1 left pending behind its own fence.
        var lease = new Dictionary<string, string> { ["Controller__LeaseDuration"] = "00:00:03" };
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new(lease)
        {
            ["Controller__Faults__StopAfterFirstCopyOfWrite"] = "30",
            ["Controller__RetireMatchedAfter"] = "00:00:01",
        });
        var other = cluster.NewController("controller-2", new(lease) { ["Controller__Id"] = "2", ["Controller__Faults__StopAfterFirstCopyOfWrite"] = "0" });
        await cluster.StartControllerAsync(other);
        const long blocks = 64;
        const int requests = 100;
        await cluster.CreateVolumeAsync("taken", BlockSize, blocks);
        using var producer = Producer(cluster, timeout: TimeSpan.FromSeconds(120));

        // Both controllers see a request for no volume: exactly one answers it.
        var unknown = await producer.PublishAsync("nosuch", 0, VolumeModel.Data(1, 1, BlockSize), "u-1");
        Assert.False(unknown.Ok);

        var image = new byte[blocks * BlockSize];
        var random = new Random(11);
        for (var i = 0; i < requests; i++)
        {
            var n = random.Next(1, 9);
            var first = random.Next(0, (int)blocks - n + 1);
            var data = VolumeModel.Data(7000 + i, n, BlockSize);
            data.CopyTo(image, first * BlockSize);
            await producer.PublishOnlyAsync("taken", first, data, "t-" + i);
        }
        await cluster.Controller.WaitForExitAsync(TimeSpan.FromSeconds(60));
        for (var i = 0; i < requests; i++)
        {
            var o = await producer.WaitOutcomeAsync("t-" + i, TimeSpan.FromSeconds(120));
            Assert.True(o.Ok, $"t-{i}: {o.Refusal}");
        }
        foreach (var g in producer.Received.GroupBy(o => o.RequestId))
            Assert.True(g.Distinct().Count() == 1, $"{g.Key}: different outcomes {string.Join(" | ", g.Distinct())}");
        Assert.Single(producer.Received, o => o.RequestId == "u-1");
        // Answered by both owners: some tags are controller 1's, the rest controller 2's.
        Assert.Contains(producer.Received, o => o.Tag?.StartsWith("1:", StringComparison.Ordinal) == true);
        Assert.Contains(producer.Received, o => o.Tag?.StartsWith("2:", StringComparison.Ordinal) == true);

        await cluster.WaitConvergedAsync("taken", TimeSpan.FromSeconds(120), other);
        Assert.Equal(0, await cluster.ScalarAsync("""
            SELECT count(*) FROM (SELECT data->>'requestId' FROM {schema}.mt_events
                WHERE type = 'tag_recorded' AND data->>'requestId' LIKE 'p1/t-%'
                GROUP BY 1 HAVING count(DISTINCT concat_ws(':', data->'tag'->>'controllerId', data->'tag'->>'epoch', data->'tag'->>'seq')) <> 1) AS twice
            """));
        Mirrors.AssertObjectFilesEqual(cluster, "taken", image);
        Assert.Equal(image, await cluster.ReadAsync("taken", 0, (int)blocks, other));
    }

    [Fact]
    public async Task malformed_requests_are_refused_and_quarantined_and_the_requests_after_them_are_applied()
    {
        await using var cluster = await TestCluster.StartAsync();
        const long blocks = 16;
        await cluster.CreateVolumeAsync("mal", BlockSize, blocks);
        using var producer = Producer(cluster);
        var key = Encoding.UTF8.GetBytes("mal");
        var one = VolumeModel.Data(1, 1, BlockSize);

        Headers Envelope(byte[] envelope) => new() { { IntakeHeaders.Request, envelope }, { IntakeHeaders.Key, Encoding.UTF8.GetBytes(cluster.OperatorKey) } };
        byte[] Valid(string id, long firstBlock, byte[] data) => IntakeCodec.EncodeRequest("p1", id, firstBlock, data);

        // Unanswerable (no request id to answer): quarantined only.
        await producer.PublishRawAsync(key, Encoding.ASCII.GetBytes("garbage"), null);
        await producer.PublishRawAsync(key, one, Envelope([0x7b, 0xff, 0x00, 0x13]));
        await producer.PublishRawAsync(key, one, Envelope(Encoding.UTF8.GetBytes("""{"version":1,"producerId":"p1","requestId":"bad/id","firstBlock":0,"dataCrc32C":0}""")));
        // Answerable: each field at and past its limits.
        var refused = new (string Id, byte[] Envelope, byte[] Data, string Why)[]
        {
            ("negative", Valid("negative", -1, one), one, "negative"),
            ("past-end", Valid("past-end", blocks, one), one, "outside"),
            ("straddles-end", Valid("straddles-end", blocks - 1, VolumeModel.Data(2, 2, BlockSize)), VolumeModel.Data(2, 2, BlockSize), "outside"),
            ("overflow", Valid("overflow", long.MaxValue, one), one, "outside"),
            ("overflow-minus", Valid("overflow-minus", long.MaxValue - 1, VolumeModel.Data(2, 2, BlockSize)), VolumeModel.Data(2, 2, BlockSize), "outside"),
            ("empty", Valid("empty", 0, []), [], "empty"),
            ("misaligned", Valid("misaligned", 0, new byte[BlockSize - 1]), new byte[BlockSize - 1], "whole number"),
            ("oversize", Valid("oversize", 0, new byte[512 * 1024 + BlockSize]), new byte[512 * 1024 + BlockSize], "more than"),
            ("damaged", Valid("damaged", 0, one), VolumeModel.Data(3, 1, BlockSize), "CRC32C"),
            ("version", Encoding.UTF8.GetBytes("""{"version":2,"producerId":"p1","requestId":"version","firstBlock":0,"dataCrc32C":0}"""), one, "version"),
            ("block-type", Encoding.UTF8.GetBytes("""{"version":1,"producerId":"p1","requestId":"block-type","firstBlock":"zero","dataCrc32C":0}"""), one, "not a valid request envelope"),
        };
        foreach (var (_, envelope, data, _) in refused) await producer.PublishRawAsync(key, data, Envelope(envelope));
        // At the limits but inside: written.
        var last = VolumeModel.Data(4, 1, BlockSize);
        var whole = VolumeModel.Data(5, (int)blocks, BlockSize);
        await producer.PublishOnlyAsync("mal", 0, whole, "whole");
        await producer.PublishOnlyAsync("mal", blocks - 1, last, "last-block");

        foreach (var (id, _, _, why) in refused)
        {
            var o = await producer.WaitOutcomeAsync(id, TimeSpan.FromSeconds(60));
            Assert.False(o.Ok, id);
            Assert.Null(o.Tag);
            Assert.Contains(why, o.Refusal, StringComparison.Ordinal);
        }
        Assert.True((await producer.WaitOutcomeAsync("whole", TimeSpan.FromSeconds(60))).Ok);
        Assert.True((await producer.WaitOutcomeAsync("last-block", TimeSpan.FromSeconds(60))).Ok);
        // Outcomes are published before they are recorded with the quarantine rows: wait for the record.
        long quarantined = 0;
        await Eventually.TrueAsync(async () => (quarantined = await cluster.ScalarAsync("SELECT count(*) FROM {schema}.intake_quarantine WHERE volume = 'mal'")) == 3 + refused.Length,
            TimeSpan.FromSeconds(10), () => $"{quarantined} requests quarantined, not {3 + refused.Length}");
        Assert.Equal(0, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE type = 'tag_recorded' AND data->>'requestId' <> 'p1/whole' AND data->>'requestId' <> 'p1/last-block'"));

        last.CopyTo(whole, (blocks - 1) * BlockSize);
        await cluster.WaitConvergedAsync("mal");
        Mirrors.AssertObjectFilesEqual(cluster, "mal", whole);
        await Mirrors.AssertReadsEqualAsync(cluster, "mal", whole, BlockSize);
    }

    [Fact]
    public async Task a_request_for_an_unknown_volume_is_refused_with_the_reason_and_tm_publish_prints_both_kinds_of_outcome()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("known", BlockSize, 16);
        using var producer = Producer(cluster);
        var o = await producer.PublishAsync("nosuch", 0, VolumeModel.Data(1, 1, BlockSize), "u-1");
        Assert.False(o.Ok);
        Assert.Equal("nosuch", o.Volume);
        Assert.Contains("no volume named 'nosuch'", o.Refusal, StringComparison.Ordinal);
        Assert.Equal(1, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.intake_quarantine WHERE volume = 'nosuch' AND request_id = 'u-1'"));
        // Asked again: the same answer, and the intake goes on for the volume that exists.
        Assert.Equal(o, await producer.PublishAsync("nosuch", 0, VolumeModel.Data(1, 1, BlockSize), "u-1"));
        Assert.True((await producer.PublishAsync("known", 0, VolumeModel.Data(2, 1, BlockSize), "u-2")).Ok);

        // The command line's publish: written (exit 0, the outcome as JSON), refused (exit 3).
        var (code, stdout) = await TmAsync(cluster, "publish", "known", "1", "--pattern", "0xab", "--bytes", "8192", "--producer", "cli-1", "--request", "c-1", "--json");
        Assert.True(code == 0, stdout);
        var written = IntakeCodec.DecodeOutcome(Encoding.UTF8.GetBytes(stdout.Trim()))!;
        Assert.True(written.Ok && written is { FirstBlock: 1, Blocks: 2, RequestId: "c-1" }, stdout);
        Assert.All(await cluster.ReadAsync("known", 1, 2), b => Assert.Equal(0xab, b));
        (code, stdout) = await TmAsync(cluster, "publish", "known", "16", "--pattern", "1", "--producer", "cli-1");
        Assert.True(code == 3 && stdout.Contains("outside volume known", StringComparison.Ordinal), stdout);
    }

    private static Task<(int Code, string Output)> TmAsync(TestCluster cluster, params string[] args) =>
        TmCli.RunAsync([.. args, "--kafka", cluster.Kafka.BootstrapServers], new Dictionary<string, string> { [AccessHeaders.KeyEnvironment] = cluster.OperatorKey });
}
