namespace TaggedMirror.Cli.Api;

/// <summary>One mirror in <see cref="VolumeInfo"/>.</summary>
internal sealed record MirrorInfo(
    string DeviceId,
    string ObjectId,
    string State,
    string? Reason,
    long LiveTagEntries,
    long UnappliedBytes,
    int PendingTokens,
    long LogEndOffset,
    long AppliedOffset,
    long LagMessages,
    long FullCopyDoneBlocks = 0,
    long FullCopyTotalBlocks = 0);
