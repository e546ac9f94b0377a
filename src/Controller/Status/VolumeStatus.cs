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
    MirrorStatus[] Mirrors,
    ResyncSummary Resyncs);

/// <summary>Resyncs of a volume: totals and the most recent.</summary>
internal sealed record ResyncSummary(long Count, long BytesCopied, ResyncRecord[] Recent);

/// <summary>One resync (a tag's range, or a step of a full copy when <paramref name="Tag"/> is null).</summary>
internal sealed record ResyncRecord(string? Tag, string Source, string Target, long FirstBlock, int BlockCount, bool Extension, long Bytes, double DurationMs, DateTimeOffset CompletedAt);

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
    long LagMessages,
    long FullCopyDoneBlocks,
    long FullCopyTotalBlocks);
