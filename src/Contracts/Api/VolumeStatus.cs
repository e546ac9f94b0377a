using System.Text.Json.Serialization;

namespace TaggedMirror.Contracts.Api;

/// <summary>
/// What the controller's <c>GET /volumes</c> and <c>GET /volumes/{name}</c> answer (JSON, camelCase), and what
/// <c>tm status</c> reads: one definition for the server, the CLI and their tests.
/// </summary>
/// <param name="Name">The volume.</param>
/// <param name="BlockSize">Bytes per block.</param>
/// <param name="Blocks">Blocks in the base range.</param>
/// <param name="ExtensionBlocks">Blocks appended past the base range.</param>
/// <param name="MinMirrors">Mirrors that must hold a write for it to succeed.</param>
/// <param name="Owned">True when this controller holds the volume's lease.</param>
/// <param name="WritesAccepted">Writes and appends accepted by this controller since it started.</param>
/// <param name="BytesAccepted">Their bytes.</param>
/// <param name="InflightWrites">Writes not yet applied on every mirror.</param>
/// <param name="Mirrors">One entry per mirror.</param>
/// <param name="Resyncs">Resync totals and the most recent; null from a controller that does not report them.</param>
/// <param name="Verify">The newest verify (scrub) since the controller started, running or done; null when none.</param>
public sealed record VolumeStatus(
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
    ResyncSummary? Resyncs = null,
    VerifyReport? Verify = null)
{
    /// <summary>Base range and extension together.</summary>
    [JsonIgnore]
    public long TotalBlocks => Blocks + ExtensionBlocks;
}

/// <summary>One mirror in <see cref="VolumeStatus"/>.</summary>
/// <param name="DeviceId">The device holding it.</param>
/// <param name="ObjectId">Its storage object there.</param>
/// <param name="State"><c>InSync</c>, <c>Degraded</c>, <c>Resyncing</c>, <c>NeedsFullCopy</c> or <c>Rebuilding</c>.</param>
/// <param name="Reason">Why it is in that state, when not in sync.</param>
/// <param name="LiveTagEntries">Live tag-table entries on the device (all its objects).</param>
/// <param name="UnappliedBytes">Bytes sent to the device and not applied yet (flow control).</param>
/// <param name="PendingTokens">Tokens waiting to ride on the next transaction to the device.</param>
/// <param name="LogEndOffset">The device topic's end, summed over partitions, as last seen.</param>
/// <param name="AppliedOffset">What the device applied, summed over partitions.</param>
/// <param name="LagMessages">The difference: messages in its log it has not applied.</param>
/// <param name="FullCopyDoneBlocks">Blocks copied so far by a running full copy.</param>
/// <param name="FullCopyTotalBlocks">Blocks that full copy will copy (0 when none ran).</param>
/// <param name="Replaces">For a mirror attached by a replace: the device whose mirror it replaces, detached once this one is in sync.</param>
public sealed record MirrorStatus(
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
    long FullCopyTotalBlocks = 0,
    string? Replaces = null);

/// <summary>Resyncs of a volume: totals and the most recent.</summary>
/// <param name="Count">Resyncs recorded.</param>
/// <param name="BytesCopied">Bytes they copied.</param>
/// <param name="Recent">The most recent, newest first.</param>
public sealed record ResyncSummary(long Count, long BytesCopied, ResyncRecord[] Recent);

/// <summary>One resync: a tag's range, or a step of a full copy when <paramref name="Tag"/> is null.</summary>
/// <param name="Tag">The repaired write's tag.</param>
/// <param name="Source">Device copied from.</param>
/// <param name="Target">Device copied to.</param>
/// <param name="FirstBlock">First block of the range.</param>
/// <param name="BlockCount">Blocks copied.</param>
/// <param name="Extension">True when the range is in the extension.</param>
/// <param name="Bytes">Bytes copied.</param>
/// <param name="DurationMs">Fence to release, in milliseconds.</param>
/// <param name="CompletedAt">When it was recorded.</param>
public sealed record ResyncRecord(
    string? Tag, string Source, string Target, long FirstBlock, int BlockCount, bool Extension, long Bytes, double DurationMs, DateTimeOffset CompletedAt);

/// <summary>What a write or append answers: its tag, where it landed, and how many mirrors hold it.</summary>
/// <param name="Tag">The write's tag, <c>controller:epoch:seq</c>.</param>
/// <param name="FirstBlock">First block written (for an append, where it landed).</param>
/// <param name="Blocks">Blocks written.</param>
/// <param name="MirrorsHolding">Mirrors whose log holds the write.</param>
/// <param name="Mirrors">Mirrors of the volume.</param>
/// <param name="Applied">True when every mirror applied it before the answer (<c>?wait=applied</c>).</param>
public sealed record WriteResult(string Tag, long FirstBlock, int Blocks, int MirrorsHolding, int Mirrors, bool Applied);

/// <summary>
/// A scrub of a volume (<c>tm verify</c>, <c>POST /volumes/{name}/verify</c>), as it goes and when done.
/// <paramref name="State"/>: running, done or failed. Blocks are checked range by range on every in-sync mirror;
/// <paramref name="Mismatches"/> lists each run of blocks a mirror held wrong, and whether it was repaired.
/// </summary>
public sealed record VerifyReport(
    string Id, string Volume, string State, bool Repair, int RangeBlocks, long RangesTotal, long RangesDone, long BlocksChecked,
    long RangesSkipped, List<VerifyMismatch> Mismatches, long BytesRepaired, DateTimeOffset StartedAt, DateTimeOffset? FinishedAt, string? Error);

/// <summary>
/// Blocks [<paramref name="FirstBlock"/>, +<paramref name="Blocks"/>) of <paramref name="Device"/> were wrong:
/// <paramref name="Kind"/> "corrupt" (the bytes no longer match the checksum the device recorded when it wrote
/// them), "divergent" (no checksum recorded, and the bytes differ from the mirrors that hold verified ones) or
/// "stale-checksum" (the bytes are right, equal to the verified copy's or to every mirror's, but the checksum recorded
/// is older than them: a crash came before it was durable; the repair rewrites block and checksum).
/// <paramref name="Source"/> is the mirror the right bytes came from; <paramref name="Repaired"/> whether the
/// device holds them now; <paramref name="Note"/> why not, when not.
/// </summary>
public sealed record VerifyMismatch(string Device, long FirstBlock, int Blocks, string Kind, string? Source, bool Repaired, string? Note);
