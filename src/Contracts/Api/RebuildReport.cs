namespace TaggedMirror.Contracts.Api;

/// <summary>
/// A rebuild of a device from its log (<c>tm rebuild</c>, <c>GET /devices/{id}/rebuild</c>): the device deletes its
/// objects and replays its log (<paramref name="Replay"/>), each of its mirrors then catches up like a mirror that
/// was away, and a verify of each volume compares the rebuilt device's checksums with its peers'.
/// </summary>
/// <param name="Id">The rebuild's id.</param>
/// <param name="DeviceId">The device rebuilt.</param>
/// <param name="Phase"><c>replaying</c>, <c>catching-up</c>, <c>verifying</c>, <c>done</c> or <c>failed</c>.</param>
/// <param name="Volumes">The volumes with a mirror on the device when it began.</param>
/// <param name="RequestedAt">When it was asked for.</param>
/// <param name="CompletedAt">When its verifies ended.</param>
/// <param name="Error">Why it failed, when it did.</param>
/// <param name="Replay">The device's replay as it records it (null until the device began).</param>
/// <param name="Mirrors">The device's mirrors now.</param>
/// <param name="Verifies">The verifies that close it, one per volume (running or done).</param>
/// <param name="Sources">Where the rebuilt bytes came from, one sentence each (the log's offsets; full copies from which mirror).</param>
public sealed record DeviceRebuildReport(
    string Id,
    string DeviceId,
    string Phase,
    string[] Volumes,
    DateTimeOffset RequestedAt,
    DateTimeOffset? CompletedAt,
    string? Error,
    DeviceRebuildProgress? Replay,
    RebuildMirror[] Mirrors,
    VerifyReport[] Verifies,
    string[] Sources);

/// <summary>One mirror of a rebuilt device in <see cref="DeviceRebuildReport"/>.</summary>
public sealed record RebuildMirror(string Volume, string State, string? Reason, long FullCopyDoneBlocks, long FullCopyTotalBlocks);
