namespace TaggedMirror.Controller.Status;

/// <summary>What <c>GET /volumes/{name}</c> answers.</summary>
internal sealed record VolumeStatus(
    string Name,
    int BlockSize,
    long Blocks,
    long ExtensionBlocks,
    int MinMirrors,
    bool Owned,
    long WritesAccepted,
    long BytesAccepted,
    int InflightWrites,
    MirrorStatus[] Mirrors);

/// <summary>One mirror in <see cref="VolumeStatus"/>.</summary>
internal sealed record MirrorStatus(
    string DeviceId,
    string ObjectId,
    string State,
    string? Reason,
    long LiveTagEntries,
    long UnappliedBytes,
    int PendingTokens,
    long LogEndOffset,
    long AppliedOffset,
    long LagMessages);
