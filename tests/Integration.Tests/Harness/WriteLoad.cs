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
                var answer = await cluster.WriteAsync(volume, first, VolumeModel.Data(dataSeed, n, model.BlockSize));
                model.Record(answer, dataSeed);
                Interlocked.Increment(ref Done);
            }
        });
        await Task.WhenAll(workers);
    }
}
