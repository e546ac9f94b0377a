using System.Text.Json.Serialization;

namespace TaggedMirror.Cli.Api;

/// <summary>What <c>GET /volumes/{name}</c> answers (the fields the CLI uses).</summary>
internal sealed record VolumeInfo(
    string Name,
    int BlockSize,
    long Blocks,
    long ExtensionBlocks,
    int MinMirrors,
    bool Owned,
    long WritesAccepted,
    long BytesAccepted,
    int InflightWrites,
    MirrorInfo[] Mirrors,
    ResyncSummaryInfo? Resyncs = null)
{
    [JsonIgnore]
    public long TotalBlocks => Blocks + ExtensionBlocks;
}

/// <summary>The volume's resyncs in <see cref="VolumeInfo"/>: totals and the most recent.</summary>
internal sealed record ResyncSummaryInfo(long Count, long BytesCopied, ResyncInfo[] Recent);

/// <summary>One resync: a tag's range, or a step of a full copy when <see cref="Tag"/> is null.</summary>
internal sealed record ResyncInfo(string? Tag, string Source, string Target, long FirstBlock, int BlockCount, bool Extension, long Bytes,
    double DurationMs, DateTimeOffset CompletedAt);
