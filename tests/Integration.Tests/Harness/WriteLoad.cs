using System.Net;
using System.Text.Json;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>Random overlapping writes of 4 to 64 KiB through the API, recorded in a model.</summary>
internal sealed class WriteLoad(TestCluster cluster, string volume, VolumeModel model, int seed)
{
    private int _nextDataSeed = seed * 1_000_000;

    public int Done;

    /// <summary>Runs <paramref name="writes"/> writes inside blocks [<paramref name="from"/>, <paramref name="blocks"/>) (default: the whole model).</summary>
    public async Task RunAsync(int writes, int concurrency, CancellationToken ct = default, int maxBlocks = 16, long from = 0, long? blocks = null)
    {
        var end = blocks ?? model.Blocks;
        var next = -1;
        var workers = Enumerable.Range(0, concurrency).Select(async w =>
        {
            var rng = new Random(seed * 31 + w);
            while (Interlocked.Increment(ref next) < writes && !ct.IsCancellationRequested)
            {
                var n = rng.Next(1, maxBlocks + 1);
                var first = rng.NextInt64(from, end - n + 1);
                var dataSeed = Interlocked.Increment(ref _nextDataSeed);
                var answer = await WriteAsync(first, VolumeModel.Data(dataSeed, n, model.BlockSize), ct);
                model.Record(answer, dataSeed);
                Interlocked.Increment(ref Done);
            }
        });
        await Task.WhenAll(workers);
    }

    /// <summary>
    /// One write, written again while the controller refuses it before sending it because its lease is not renewed
    /// (PostgreSQL away longer than the lease's margin for writes: a safety of the product, and a write never sent,
    /// which a client writes again). Any other refusal fails the test, a write whose copies were sent among them.
    /// </summary>
    private async Task<WriteResult> WriteAsync(long first, byte[] data, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            using var r = await cluster.PutBlocksAsync(volume, first, data);
            var body = await r.Content.ReadAsStringAsync(ct);
            if (r.IsSuccessStatusCode) return JsonSerializer.Deserialize<WriteResult>(body, JsonSerializerOptions.Web)!;
            var unsent = r.StatusCode == HttpStatusCode.ServiceUnavailable && body.Contains("could not renew its lease in time", StringComparison.Ordinal);
            Assert.True(unsent && DateTime.UtcNow < deadline, $"write [{first}+{data.Length}B]: {(int)r.StatusCode} {body}");
            await Task.Delay(200, ct);
        }
    }
}
