namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>Random overlapping writes of 4 to 64 KiB through the API, recorded in a model.</summary>
internal sealed class WriteLoad(TestCluster cluster, string volume, VolumeModel model, int seed)
{
    private int _nextDataSeed = seed * 1_000_000;

    public int Done;

    public async Task RunAsync(int writes, int concurrency, CancellationToken ct = default, int maxBlocks = 16)
    {
        var next = -1;
        var workers = Enumerable.Range(0, concurrency).Select(async w =>
        {
            var rng = new Random(seed * 31 + w);
            while (Interlocked.Increment(ref next) < writes && !ct.IsCancellationRequested)
            {
                var blocks = rng.Next(1, maxBlocks + 1);
                var first = rng.NextInt64(0, model.Blocks - blocks + 1);
                var dataSeed = Interlocked.Increment(ref _nextDataSeed);
                var answer = await cluster.WriteAsync(volume, first, VolumeModel.Data(dataSeed, blocks, model.BlockSize));
                model.Record(answer, dataSeed);
                Interlocked.Increment(ref Done);
            }
        });
        await Task.WhenAll(workers);
    }
}
