namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>
/// Writes one at a time, every 100 ms, to blocks [from, to) while a test kills something: an acknowledged write
/// goes into the model, one cut off by the kill is uncertain (it may have reached the mirrors or not), for
/// <see cref="Mirrors.AssertIdenticalAndAcknowledged"/>.
/// </summary>
internal static class WritesThroughFault
{
    public static Task<List<(long First, byte[] Data)>> RunAsync(
        TestCluster cluster, string volume, VolumeModel model, long from, long to, int writes, int seed) => Task.Run(async () =>
    {
        var uncertain = new List<(long First, byte[] Data)>();
        var rng = new Random(seed);
        for (var i = 0; i < writes; i++)
        {
            var n = rng.Next(1, 5);
            var first = rng.NextInt64(from, to - n + 1);
            var dataSeed = seed * 10_000 + i;
            var data = VolumeModel.Data(dataSeed, n, model.BlockSize);
            try
            {
                model.Record(await cluster.WriteAsync(volume, first, data), dataSeed);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or Xunit.Sdk.XunitException)
            {
                uncertain.Add((first, data));
            }
            await Task.Delay(100);
        }
        return uncertain;
    });
}
