namespace TaggedMirror.Contracts.Api;

/// <summary>
/// Where an object's range holds data on a device (<c>GET /objects/{id}/allocation?offset=&amp;length=</c>): the ranges
/// with data, in order, as byte offsets and lengths, and <paramref name="Until"/>, how far they were looked for (the
/// range's end, or less when there were more than <see cref="MaxRanges"/>). Between them, up to <paramref name="Until"/>,
/// the object reads as zeros (holes: punched by a zero or a trim, or never written).
/// </summary>
public sealed record ObjectAllocation(long[] DataOffsets, long[] DataLengths, long Until)
{
    /// <summary>The most ranges one answer carries.</summary>
    public const int MaxRanges = 16384;
}
