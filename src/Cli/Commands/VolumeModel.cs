namespace TaggedMirror.Cli.Commands;

/// <summary>What a volume should hold: the demo applies its writes here in tag order and compares.</summary>
internal sealed class VolumeModel(int blockSize)
{
    private byte[] _bytes = [];

    public long Blocks => _bytes.Length / blockSize;

    public void EnsureBlocks(long blocks)
    {
        if (blocks * blockSize > _bytes.Length) Array.Resize(ref _bytes, checked((int)(blocks * blockSize)));
    }

    public void Load(long firstBlock, byte[] data) => Apply(firstBlock, data);

    public void Apply(long firstBlock, byte[] data)
    {
        EnsureBlocks(firstBlock + (data.Length / blockSize));
        data.CopyTo(_bytes, firstBlock * blockSize);
    }

    /// <summary>The blocks where <paramref name="actual"/> differs from the model (a length difference counts the missing blocks).</summary>
    public IReadOnlyList<long> Compare(ReadOnlySpan<byte> actual)
    {
        var differing = new List<long>();
        for (var b = 0L; b < Blocks; b++)
        {
            var start = (int)(b * blockSize);
            if (actual.Length < start + blockSize || !actual.Slice(start, blockSize).SequenceEqual(_bytes.AsSpan(start, blockSize)))
                differing.Add(b);
        }
        return differing;
    }
}
