using System.Net.Http.Json;
using System.Text.Json;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// <c>POST /volumes/{name}/blocks/{lba}/zero?count=n</c>: a tagged zero carrying no data, answered like a write, on
/// every mirror, recorded as the blocks' writer, and ordered with the writes around it.
/// </summary>
public sealed class ZeroTests
{
    private const int BlockSize = 4096;
    private const long Blocks = 1024;

    [Fact]
    public async Task a_zero_through_the_api_clears_exactly_its_blocks_on_every_mirror_between_the_writes_around_it()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("z", BlockSize, Blocks);
        var model = new VolumeModel(BlockSize, Blocks);
        await new WriteLoad(cluster, "z", model, seed: 41).RunAsync(writes: 120, concurrency: 4, maxBlocks: 16);
        await cluster.WaitConvergedAsync("z");
        var image = await cluster.ReadAsync("z", 0, (int)Blocks);

        // Zeroes of one block, of many, and of the volume's last block; each written over again in part right after
        // (same volume, one after the other: the write must land after the zero on every mirror).
        (long First, int Count)[] zeroes = [(0, 1), (100, 300), (Blocks - 1, 1), (512, 512)];
        foreach (var (first, count) in zeroes)
        {
            using var r = await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/volumes/z/blocks/{first}/zero?count={count}&wait=applied"), null);
            var body = await r.Content.ReadAsStringAsync();
            Assert.True(r.IsSuccessStatusCode, $"zero [{first}, +{count}): {(int)r.StatusCode} {body}");
            var result = JsonSerializer.Deserialize<WriteResult>(body, JsonSerializerOptions.Web)!;
            Assert.Equal((first, count, 2, 2, true), (result.FirstBlock, result.Blocks, result.MirrorsHolding, result.Mirrors, result.Applied));
            image.AsSpan((int)(first * BlockSize), count * BlockSize).Clear();
        }
        var after = VolumeModel.Data(99, 2, BlockSize);
        await cluster.WriteAsync("z", 600, after);
        after.CopyTo(image, 600 * BlockSize);

        await cluster.WaitConvergedAsync("z");
        Mirrors.AssertObjectFilesEqual(cluster, "z", image);
        await Mirrors.AssertReadsEqualAsync(cluster, "z", image, BlockSize);
        // Who wrote block 200: the zero, applied by both mirrors.
        var writer = await cluster.WritersAsync("z", 200);
        Assert.Equal("zero", writer.LastWrite?.Kind);
        Assert.Equal(2, writer.LastWrite!.AppliedBy.Length);
    }
}
