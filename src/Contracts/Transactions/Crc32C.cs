using System.Numerics;
using System.Runtime.InteropServices;

namespace TaggedMirror.Contracts.Transactions;

/// <summary>
/// CRC32C (Castagnoli) with the hardware instruction behind <see cref="BitOperations.Crc32C(uint, ulong)"/>.
/// Not System.IO.Hashing: it is served now, but up to 11.0 it has CRC-32 (IEEE) and CRC-64, not CRC-32C; the
/// framework's instruction is all this needs. Start with <see cref="uint.MaxValue"/>, finish with bitwise not.
/// </summary>
public static class Crc32C
{
    /// <summary>Feeds <paramref name="data"/> into a running (un-finalised) CRC.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(data);
        foreach (var w in words)
            crc = BitOperations.Crc32C(crc, w);
        foreach (var b in data[(words.Length * 8)..])
            crc = BitOperations.Crc32C(crc, b);
        return crc;
    }

    /// <summary>The finalised CRC32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => ~Append(uint.MaxValue, data);
}
