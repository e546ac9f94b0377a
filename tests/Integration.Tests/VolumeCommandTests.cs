using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// A volume's life through the command line, as an operator types it: <c>tm create</c>, <c>tm grow</c>,
/// <c>tm attach</c>, <c>tm detach</c>, <c>tm delete</c>, each against a real stack, with the exit code and sentence of
/// every refusal, and the model comparison (object files byte for byte, API reads) after the shape changed.
/// </summary>
public sealed class VolumeCommandTests
{
    private const int BlockSize = 4096;
    private static readonly string[] Three = ["d0", "d1", "d2"];

    [Fact]
    public async Task a_volume_is_created_grown_given_a_mirror_and_deleted_with_tm_and_every_refusal_says_why()
    {
        await using var cluster = await TestCluster.StartAsync(Three);
        Task<(int Code, string Output)> Tm(params string[] args) =>
            TmCli.RunAsync([.. args, "--controller", cluster.Controller.Url], new Dictionary<string, string> { [AccessHeaders.KeyEnvironment] = cluster.OperatorKey });

        // Refused before anything is created: a size that is no whole number of blocks, no size, a zero, a device
        // whose agent never started, a single mirror.
        await AssertRefusedAsync(Tm("create", "cv", "--size", "1000", "--mirrors", "d0,d1"), "--size 1000 bytes is not a whole number of 4096-byte blocks");
        await AssertRefusedAsync(Tm("create", "cv", "--size", "0", "--mirrors", "d0,d1"), "--size '0' is not a size");
        await AssertRefusedAsync(Tm("create", "cv", "--size", "-4KiB", "--mirrors", "d0,d1"), "--size '-4KiB' is not a size");
        await AssertRefusedAsync(Tm("create", "cv", "--size", "9999999999TiB", "--mirrors", "d0,d1"), "--size '9999999999TiB' is not a size");
        await AssertRefusedAsync(Tm("create", "cv", "--size", "1MiB", "--mirrors", "d0,d9"), "no device named d9 has registered");
        await AssertRefusedAsync(Tm("create", "cv", "--size", "1MiB", "--mirrors", "d0"), "two or more mirrors");
        await AssertRefusedAsync(Tm("create", "cv", "--size", "1MiB", "--mirrors", "d0,d1", "--block-size", "3000"), "--block-size 3000 is not a power of two");
        Assert.Equal(0, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE type = 'volume_created'"));

        var (code, output) = await Tm("create", "cv", "--size", "1MiB", "--mirrors", "d0,d1", "--min-mirrors", "2");
        Assert.True(code == 0, output);
        Assert.Contains("created cv: 256 blocks of 4096 bytes (1 MiB) on 2 mirrors, a write succeeding on at least 2", OneLine(output));
        var status = await StatusAsync(cluster, "cv");
        Assert.Equal((256L, BlockSize, 2), (status.Blocks, status.BlockSize, status.MinMirrors));
        Assert.Equal(["d0", "d1"], status.Mirrors.Select(m => m.DeviceId));
        await AssertRefusedAsync(Tm("create", "cv", "--size", "1MiB", "--mirrors", "d0,d1"), "volume cv already exists");

        var model = new VolumeModel(BlockSize, 512);
        await new WriteLoad(cluster, "cv", model, seed: 91).RunAsync(writes: 60, concurrency: 4, blocks: 256);
        await AssertRefusedAsync(Tm("grow", "cv", "100"), "cv has 256 blocks; a volume only grows");
        (code, output) = await Tm("grow", "cv", "512");
        Assert.True(code == 0, output);
        Assert.Contains("cv has 512 blocks of 4096 bytes now (2 MiB)", OneLine(output));
        await new WriteLoad(cluster, "cv", model, seed: 92).RunAsync(writes: 60, concurrency: 4);

        (code, output) = await Tm("attach", "cv", "d2");
        Assert.True(code == 0, output);
        Assert.Contains("in sync; mirrors now: d0 (InSync), d1 (InSync), d2 (InSync)", OneLine(output));
        await cluster.WaitConvergedAsync("cv");
        var expected = model.Expected();
        Mirrors.AssertObjectFilesEqual(cluster, "cv", expected, Three);

        (code, output) = await Tm("detach", "cv", "d0");
        Assert.True(code == 0, output);
        Assert.Contains("detached the mirror of cv on d0; its object cv.d0:", OneLine(output));
        Assert.Equal(["d1", "d2"], (await StatusAsync(cluster, "cv")).Mirrors.Select(m => m.DeviceId));
        await Mirrors.AssertReadsEqualAsync(cluster, "cv", expected, BlockSize);

        await AssertRefusedAsync(Tm("delete", "cv"), "add --yes");
        Assert.Equal(["d1", "d2"], (await StatusAsync(cluster, "cv")).Mirrors.Select(m => m.DeviceId));
        (code, output) = await Tm("delete", "cv", "--yes");
        Assert.True(code == 0, output);
        Assert.Contains("deleted cv", OneLine(output));
        using (var gone = await cluster.Http.GetAsync(new Uri($"{cluster.Controller.Url}/volumes/cv")))
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        await AssertRefusedAsync(Tm("create", "cv", "--size", "1MiB", "--mirrors", "d0,d1"), "volume cv was deleted; a deleted volume's name is not used again");
    }

    /// <summary>Exit code 1 and the sentence saying why.</summary>
    private static async Task AssertRefusedAsync(Task<(int Code, string Output)> run, string why)
    {
        var (code, output) = await run;
        Assert.True(code == 1, $"expected exit code 1, got {code}: {output}");
        Assert.Contains(why, OneLine(output));
    }

    /// <summary>What the command printed, its lines joined (a terminal narrower than a sentence wraps it).</summary>
    private static string OneLine(string output) =>
        string.Join(' ', output.Split(['\n', '\r'], StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()));

    private static async Task<VolumeStatus> StatusAsync(TestCluster cluster, string volume) =>
        (await cluster.Http.GetFromJsonAsync<VolumeStatus>(new Uri($"{cluster.Controller.Url}/volumes/{volume}"), JsonSerializerOptions.Web))!;
}
