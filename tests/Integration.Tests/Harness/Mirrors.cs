namespace TaggedMirror.Integration.Tests.Harness;

internal static class Mirrors
{
    /// <summary>Every mirror's object file equals <paramref name="expected"/> (bytes never written read as zero).</summary>
    public static void AssertObjectFilesEqual(TestCluster cluster, string volume, byte[] expected, params string[] devices)
    {
        foreach (var d in devices.Length == 0 ? cluster.Devices : devices)
        {
            var file = cluster.ObjectFile(d, volume);
            var image = new byte[expected.Length];
            file.AsSpan(0, Math.Min(file.Length, image.Length)).CopyTo(image);
            var at = FirstDifference(image, expected);
            Assert.True(at < 0, $"mirror {d} of {volume} differs from the model at byte {at} (block {at / 4096}); file is {file.Length} bytes");
        }
    }

    /// <summary>Reading the whole volume through the API returns <paramref name="expected"/>.</summary>
    public static async Task AssertReadsEqualAsync(TestCluster cluster, string volume, byte[] expected, int blockSize, int chunkBlocks = 256)
    {
        var blocks = expected.Length / blockSize;
        for (var b = 0; b < blocks; b += chunkBlocks)
        {
            var n = Math.Min(chunkBlocks, blocks - b);
            var got = await cluster.ReadAsync(volume, b, n);
            var want = expected.AsSpan(b * blockSize, n * blockSize);
            var at = FirstDifference(got, want);
            Assert.True(at < 0, $"read of blocks [{b}, {b + n}) differs from the model at byte {at}");
        }
    }

    public static long FirstDifference(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        if (a.Length != b.Length) return Math.Min(a.Length, b.Length);
        var i = a.CommonPrefixLength(b);
        return i == a.Length ? -1 : i;
    }
}
