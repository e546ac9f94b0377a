using System.Globalization;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// A full copy with the default chunk settings must fit the device topics' message limit, whatever the block
/// size: a chunk the producer refuses degrades the target, and the copy starts again forever.
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
}
