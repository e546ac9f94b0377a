using System.Globalization;
using System.Net;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// A full copy with the default chunk settings must fit the device topics' message limit, whatever the block
/// size: a chunk the producer refuses degrades the target, and the copy starts again forever. And a mirror whose
/// log was truncated under it serves no read until it is copied, even to a controller that never tracked what it lost.
/// </summary>
public sealed class FullCopyTests
{
    /// <summary>The controller's default largest write: every message a full copy sends must carry no more.</summary>
    private const int MaxWriteBytes = 512 * 1024;

    [Theory]
    [InlineData(4096, 512, 16)]
    [InlineData(65536, 64, 2)]
    public async Task a_device_truncated_under_it_is_fully_copied_with_default_chunks_and_ends_byte_identical(int blockSize, long blocks, int maxBlocksPerWrite)
    {
        // Only the lag bound is raised (so the log really runs past the stopped device's position); the full copy's
        // chunk settings are the defaults.
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new()
        {
            ["Controller__MaxLagBytes"] = (64 * 1024 * 1024).ToString(CultureInfo.InvariantCulture),
            ["Controller__LagTimeout"] = "00:02:00",
        });
        await cluster.CreateVolumeAsync("full", blockSize, blocks);
        var model = new VolumeModel(blockSize, blocks);
        // Fill the whole volume first, so every chunk of the copy carries real data.
        for (long b = 0; b < blocks; b += MaxWriteBytes / blockSize)
        {
            var n = (int)Math.Min(MaxWriteBytes / blockSize, blocks - b);
            var seed = (int)b + 1;
            model.Record(await cluster.WriteAsync("full", b, VolumeModel.Data(seed, n, blockSize)), seed);
        }
        await cluster.WaitTagTablesEmptyAsync();

        await cluster.Agent("d1").StopAsync();
        // About 12 MiB while d1 is stopped: more than twice the mock broker's 5 MiB partition window.
        var bytesPerWrite = (maxBlocksPerWrite + 1) / 2.0 * blockSize;
        await new WriteLoad(cluster, "full", model, seed: 5).RunAsync(writes: (int)(12 * 1024 * 1024 / bytesPerWrite), concurrency: 2, maxBlocks: maxBlocksPerWrite);
        await cluster.StartAgentAsync("d1", waitRunning: false);

        await Eventually.TrueAsync(async () => (await cluster.AgentStatusAsync("d1")).GetProperty("truncationDetected").GetBoolean(),
            TimeSpan.FromSeconds(60), () => "d1 did not report the truncation\n" + cluster.Logs());
        await cluster.WaitConvergedAsync("full", TimeSpan.FromSeconds(60));

        var resyncs = await cluster.ResyncsAsync("full");
        Mirrors.AssertLastFullCopyCovers(resyncs, blocks);
        Assert.All(resyncs.Where(r => r.Tag is null), r => Assert.True((long)r.BlockCount * blockSize <= MaxWriteBytes, $"a full-copy step of {r.BlockCount} blocks is larger than a write may be"));
        await cluster.WaitFullCopyMarksClearedAsync();
        var expected = model.Expected();
        Mirrors.AssertObjectFilesEqual(cluster, "full", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "full", expected, blockSize, chunkBlocks: (int)Math.Min(blocks, 16 * 1024 * 1024 / blockSize));
    }

    [Fact]
    public async Task a_controller_that_took_the_volume_never_reads_a_mirror_whose_log_was_truncated_past_writes_it_had_not_applied()
    {
        const int blockSize = 4096;
        const long blocks = 64;
        await using var rabbit = TcpProxy.ToRabbitMq();
        await using var cluster = await TestCluster.StartAsync(
            controllerSettings: new()
            {
                ["Controller__MaxLagBytes"] = (64 * 1024 * 1024).ToString(CultureInfo.InvariantCulture),
                ["Controller__LagTimeout"] = "00:02:00",
            },
            // d1 reaches RabbitMQ only through the relay: its truncation notice can be kept from the controller.
            processEnvironment: p => p == "agent-d1"
                ? new Dictionary<string, string>
                {
                    ["TaggedMirror__RabbitMqHost"] = "127.0.0.1",
                    ["TaggedMirror__RabbitMqPort"] = rabbit.Port.ToString(CultureInfo.InvariantCulture),
                }
                : []);
        await cluster.CreateVolumeAsync("lost", blockSize, blocks);
        var model = new VolumeModel(blockSize, blocks);
        model.Record(await cluster.WriteAsync("lost", 0, VolumeModel.Data(1, (int)blocks, blockSize)), 1);
        await cluster.WaitTagTablesEmptyAsync();
        var older = model.Expected();

        // d1 misses the second version of every block; the controller that sent it is killed, so the one that takes
        // the volume next tracks nothing of it in memory; then d1's log loses it before d1 applied it.
        await cluster.Agent("d1").StopAsync();
        model.Record(await cluster.WriteAsync("lost", 0, VolumeModel.Data(2, (int)blocks, blockSize)), 2);
        await cluster.RestartControllerAsync(kill: true);
        Assert.True(DeviceTopic.DeleteAllRecords(cluster, "d1") > await cluster.AgentNextOffsetAsync("d1"), "d1 had consumed the writes it was stopped for");
        // d0, the only mirror that holds them, goes away too: a read may only be refused now. d1 has applied its
        // whole log as the log stands (it moved past what it lost), and the controller has not heard of the loss.
        await cluster.Agent("d0").StopAsync();
        rabbit.Block();
        await cluster.StartAgentAsync("d1", waitRunning: false);
        await Eventually.TrueAsync(async () => (await cluster.AgentStatusAsync("d1")).GetProperty("truncationDetected").GetBoolean(),
            TimeSpan.FromSeconds(60), () => "d1 did not detect the truncation\n" + cluster.Logs());
        var newer = model.Expected();
        for (var i = 0; i < 10; i++)
        {
            using var r = await cluster.Http.GetAsync(new Uri($"{cluster.Controller.Url}/volumes/lost/blocks/0?count={blocks}"));
            var body = await r.Content.ReadAsByteArrayAsync();
            if (r.StatusCode == HttpStatusCode.ServiceUnavailable) continue;
            Assert.True(r.IsSuccessStatusCode, $"read: {(int)r.StatusCode} {System.Text.Encoding.UTF8.GetString(body)}");
            Assert.False(Mirrors.FirstDifference(body, older) < 0, $"read {i} returned the blocks as they were before the last acknowledged write (d1's, lost with its log)");
            Assert.True(Mirrors.FirstDifference(body, newer) < 0, $"read {i} returned neither the acknowledged blocks nor a refusal");
        }

        // Healed: d1 is copied in full from d0 and every block reads as last written.
        rabbit.Unblock();
        await cluster.StartAgentAsync("d0");
        await cluster.WaitConvergedAsync("lost", TimeSpan.FromSeconds(90));
        await cluster.WaitFullCopyMarksClearedAsync();
        Mirrors.AssertObjectFilesEqual(cluster, "lost", newer);
        await Mirrors.AssertReadsEqualAsync(cluster, "lost", newer, blockSize);
    }
}
