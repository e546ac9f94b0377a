namespace TaggedMirror.Integration.Tests.Harness;

internal static class Mirrors
{
    /// <summary>
    /// The full copy that finished covered the volume exactly, step after step, and returns its steps. An earlier
    /// pass may have been cut short: a truncation recorded while a device is copied to makes its copy start over
    /// (it cannot tell what it lost), and the development broker's log starts moving again as soon as anything is
    /// appended to it. Starting over more than twice is a failure (a copy that never settles).
    /// </summary>
    public static List<Resync> AssertLastFullCopyCovers(List<Resync> resyncs, long blocks)
    {
        var steps = resyncs.Where(r => r.Tag is null).ToList();
        var last = steps.FindLastIndex(r => r.FirstBlock == 0);
        Assert.True(last >= 0, "no full-copy step started at block 0");
        var pass = steps[last..];
        Assert.Equal(blocks, pass.Sum(r => (long)r.BlockCount));
        Assert.All(pass.Zip(pass.Skip(1)), p => Assert.Equal(p.First.FirstBlock + p.First.BlockCount, p.Second.FirstBlock));
        Assert.True(steps.Count <= 3 * pass.Count, $"the copy started over more than twice ({steps.Count} steps for a pass of {pass.Count})");
        return pass;
    }

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

    /// <summary>
    /// Every mirror holds the same bytes, and each block holds its last acknowledged write (<paramref name="expected"/>)
    /// or the bytes of a write cut off by a kill (<paramref name="uncertain"/>: it may have reached the mirrors or
    /// not). Returns the image the mirrors hold, for a read comparison.
    /// </summary>
    public static byte[] AssertIdenticalAndAcknowledged(
        TestCluster cluster, string volume, byte[] expected, IReadOnlyList<(long First, byte[] Data)> uncertain, int blockSize, string[]? devices = null)
    {
        devices ??= cluster.Devices;
        byte[] Image(string device)
        {
            var image = new byte[expected.Length];
            var file = cluster.ObjectFile(device, volume);
            file.AsSpan(0, Math.Min(file.Length, image.Length)).CopyTo(image);
            return image;
        }
        var first = Image(devices[0]);
        foreach (var d in devices.Skip(1))
            Assert.True(FirstDifference(first, Image(d)) < 0, $"mirrors {devices[0]} and {d} of {volume} differ");
        for (var b = 0; b < expected.Length / blockSize; b++)
        {
            var actual = first.AsSpan(b * blockSize, blockSize).ToArray();
            if (actual.AsSpan().SequenceEqual(expected.AsSpan(b * blockSize, blockSize))) continue;
            Assert.True(uncertain.Any(u => b >= u.First && b < u.First + u.Data.Length / blockSize
                    && actual.AsSpan().SequenceEqual(u.Data.AsSpan((int)(b - u.First) * blockSize, blockSize))),
                $"block {b} of {volume} holds neither its last acknowledged write nor a write cut off by a kill");
        }
        return first;
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
