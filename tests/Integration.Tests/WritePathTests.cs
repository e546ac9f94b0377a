using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;
using Xunit.Abstractions;

namespace TaggedMirror.Integration.Tests;

/// <summary>Flow 1–3 against the real processes, PostgreSQL, RabbitMQ and the mock Kafka cluster.</summary>
public sealed class WritePathTests(ITestOutputHelper output)
{
    private const int BlockSize = 4096;

    [Fact]
    public async Task a_copy_applied_before_the_write_path_counted_it_as_sent_leaves_no_bytes_in_the_backlog()
    {
        // The write at block 7 stalls right after its first copy is handed to the log, as a thread descheduled there
        // would: d0 applies and acknowledges it meanwhile. Before the fix, that acknowledgement settled the whole write (d1's
        // copy not yet counted as pending), so it was answered as applied everywhere as soon as d1's copy was sent, and it
        // took d0's bytes off before they were counted as sent; d1's acknowledgement then found no write in flight. Both
        // backlogs kept the write's bytes for good, and flow control would have held writes back for them.
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new()
        {
            ["Controller__Faults__StallAfterSendAtBlock"] = "7",
            ["Controller__Faults__StallFor"] = "00:00:01.500",
        });
        await cluster.CreateVolumeAsync("early", BlockSize, 64);
        var data = VolumeModel.Data(1, 3, BlockSize);
        var answer = await cluster.WriteAsync("early", 7, data, wait: "applied");
        Assert.True(answer.Applied);
        // Answered as applied: on every mirror, the one whose copy went last included.
        var expected = new byte[64 * BlockSize];
        data.CopyTo(expected, 7 * BlockSize);
        Mirrors.AssertObjectFilesEqual(cluster, "early", expected);
        await cluster.WriteAsync("early", 20, VolumeModel.Data(2, 2, BlockSize), wait: "applied");
        await cluster.WaitConvergedAsync("early");
        await Eventually.TrueAsync(async () => (await cluster.VolumeStatusAsync("early")).GetProperty("mirrors").EnumerateArray()
                .All(m => m.GetProperty("unappliedBytes").GetInt64() == 0),
            TimeSpan.FromSeconds(15), () => $"bytes left in a device's backlog: {cluster.VolumeStatusAsync("early").GetAwaiter().GetResult()}");
        Assert.Equal(data, await cluster.ReadAsync("early", 7, 3));
    }

    [Fact]
    public async Task ten_thousand_mixed_writes_leave_both_mirrors_equal_to_the_model_and_tag_tables_empty()
    {
        await using var cluster = await TestCluster.StartAsync();
        const long blocks = 2048; // 8 MiB: 10,000 writes of 1–16 blocks overlap many times over
        await cluster.CreateVolumeAsync("vol", BlockSize, blocks);
        var model = new VolumeModel(BlockSize, blocks);
        var load = new WriteLoad(cluster, "vol", model, seed: 1);

        // Sample the live tag table while the writes run: it must stay bounded by the in-flight window,
        // not grow with the number of writes.
        long maxLive = 0;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                maxLive = Math.Max(maxLive, await cluster.LiveEntriesAsync());
                await Task.Delay(50);
            }
        });
        var started = DateTime.UtcNow;
        await load.RunAsync(writes: 10_000, concurrency: 8);
        await sampling.CancelAsync();
        await sampler;
        output.WriteLine($"10,000 writes in {(DateTime.UtcNow - started).TotalSeconds:0.0}s; most live entries seen: {maxLive}");

        // Controller default MaxLagBytes is 2 MiB: at most 512 4-KiB writes per device unapplied, plus the
        // entries whose tokens are on their way back (one token batch per device).
        const long bound = 2 * (2 * 1024 * 1024 / BlockSize) + 2 * 1024;
        Assert.InRange(maxLive, 0, bound);

        await cluster.WaitTagTablesEmptyAsync();
        var expected = model.Expected();
        Mirrors.AssertObjectFilesEqual(cluster, "vol", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "vol", expected, BlockSize);
        var retired = await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE type = 'tag_retired'");
        // One retirement per write per mirror and nothing more: any other means a mirror missed a write in a
        // healthy run and was repaired (a repair's entry is retired too); say what happened if so.
        Assert.True(retired == 2 * 10_000, $"{retired} tag_retired events for 10,000 writes on two mirrors; resyncs: "
            + string.Join("; ", await cluster.ResyncsAsync("vol") is { Count: > 0 } r ? r.Select(x => $"resync {x.Source}->{x.Target} [{x.FirstBlock}+{x.BlockCount}] {x.Tags}") : ["no resync"])
            + "\nvolume: " + await cluster.VolumeStatusAsync("vol") + "\n" + cluster.Logs());
    }

    [Fact]
    public async Task a_read_returns_what_an_acknowledged_write_put_there()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("rw", BlockSize, 64);
        for (var i = 0; i < 50; i++)
        {
            var data = VolumeModel.Data(i, 2, BlockSize);
            await cluster.WriteAsync("rw", 10, data);
            Assert.Equal(data, await cluster.ReadAsync("rw", 10, 2));
        }
    }

    [Fact]
    public async Task wait_applied_answers_after_every_device_recorded_the_write()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("wa", BlockSize, 64);
        var answer = await cluster.WriteAsync("wa", 3, VolumeModel.Data(7, 4, BlockSize), wait: "applied");
        Assert.True(answer.Applied);
        Assert.Equal(2, answer.MirrorsHolding);
        var parts = answer.Tag.Split(':');
        foreach (var d in cluster.Devices)
        {
            var recorded = await cluster.ScalarAsync(
                "SELECT count(*) FROM {schema}.mt_events WHERE stream_id = @s AND type = 'tag_recorded' AND (data->'tag'->>'seq')::bigint = @seq",
                ("s", "tagtable-" + d), ("seq", long.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture)));
            Assert.Equal(1, recorded);
        }
    }

    [Fact]
    public async Task appends_land_at_the_same_place_on_every_mirror()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("ap", BlockSize, 16);
        var expectedFirst = 16L;
        var all = new List<byte>();
        for (var i = 0; i < 20; i++)
        {
            var data = VolumeModel.Data(100 + i, 1 + i % 3, BlockSize);
            using var r = await cluster.AppendAsync("ap", data);
            Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());
            var answer = System.Text.Json.JsonSerializer.Deserialize<WriteResult>(await r.Content.ReadAsStringAsync(), System.Text.Json.JsonSerializerOptions.Web)!;
            Assert.Equal(expectedFirst, answer.FirstBlock);
            expectedFirst += answer.Blocks;
            all.AddRange(data);
        }
        await cluster.WaitTagTablesEmptyAsync();
        var image = new byte[16 * BlockSize + all.Count];
        all.ToArray().CopyTo(image, 16 * BlockSize);
        Mirrors.AssertObjectFilesEqual(cluster, "ap", image);
        Assert.Equal(all.ToArray(), await cluster.ReadAsync("ap", 16, all.Count / BlockSize));
        var extension = await cluster.ScalarAsync("SELECT min(ext_blocks) FROM {schema}.device_objects WHERE object_id LIKE 'ap.%'");
        Assert.Equal(all.Count / BlockSize, extension);
    }
}
