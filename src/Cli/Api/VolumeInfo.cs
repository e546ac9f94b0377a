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
    MirrorInfo[] Mirrors)
{
    public long TotalBlocks => Blocks + ExtensionBlocks;
}
