using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>
/// What the volume must hold: writes applied in tag order (the order the controller put them in every
/// mirror's log). Data is regenerated from a seed, so the model does not keep every write's bytes.
/// </summary>
internal sealed class VolumeModel(int blockSize, long blocks)
{
    private readonly List<(long Seq, long FirstBlock, int Blocks, int Seed)> _writes = [];
    private readonly Lock _lock = new();

    public int BlockSize { get; } = blockSize;

    public long Blocks { get; } = blocks;

    public static byte[] Data(int seed, int blocks, int blockSize)
    {
        var data = new byte[blocks * blockSize];
        new Random(seed).NextBytes(data);
        return data;
    }

    public void Record(WriteResult answer, int seed)
    {
        // Epochs order before sequences: a restarted controller's writes come after the earlier run's.
        var key = ((long)answer.Epoch << 40) | answer.Seq;
        lock (_lock) _writes.Add((key, answer.FirstBlock, answer.Blocks, seed));
    }

    public int Count
    {
        get { lock (_lock) return _writes.Count; }
    }

    /// <summary>Which blocks any recorded write touched.</summary>
    public bool[] WrittenBlocks()
    {
        var written = new bool[Blocks];
        lock (_lock)
        {
            foreach (var w in _writes)
                Array.Fill(written, true, (int)w.FirstBlock, w.Blocks);
        }
        return written;
    }

    public byte[] Expected()
    {
        var image = new byte[Blocks * BlockSize];
        List<(long Seq, long FirstBlock, int Blocks, int Seed)> ordered;
        lock (_lock) ordered = [.. _writes.OrderBy(w => w.Seq)];
        foreach (var w in ordered)
            Data(w.Seed, w.Blocks, BlockSize).CopyTo(image, w.FirstBlock * BlockSize);
        return image;
    }
}
