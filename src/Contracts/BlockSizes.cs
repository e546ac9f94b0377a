using System.Numerics;

namespace TaggedMirror.Contracts;

/// <summary>Block sizes a volume may have.</summary>
public static class BlockSizes
{
    /// <summary>Smallest block size.</summary>
    public const int Min = 512;

    /// <summary>Largest block size.</summary>
    public const int Max = 65536;

    /// <summary>A power of two from <see cref="Min"/> to <see cref="Max"/>.</summary>
    public static bool IsValid(int blockSize) => blockSize is >= Min and <= Max && BitOperations.IsPow2(blockSize);
}
