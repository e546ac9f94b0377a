using System.Globalization;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.DeviceAgent.TagTable;

/// <summary>
/// A rebuild of the device from its log (<c>tm rebuild</c>), as recorded in <c>device_rebuilds</c>. While it is not
/// complete, every transaction of a partition below <see cref="ReplayUntil"/> is replayed: applied to the block store
/// as when it first came, with nothing recorded in the tag table (its entry was recorded and settled, or is still
/// live, from the first time). Design notes: docs/design.md, "Rebuilding a device from its log".
/// </summary>
internal sealed class RebuildState(
    string id, Dictionary<int, long> logStart, Dictionary<int, long> replayUntil, DateTimeOffset startedAt)
{
    public string Id { get; } = id;

    public Dictionary<int, long> LogStart { get; } = logStart;

    public Dictionary<int, long> ReplayUntil { get; } = replayUntil;

    public DateTimeOffset StartedAt { get; } = startedAt;

    /// <summary>
    /// The object files were deleted. Recorded with the first batch replayed after the deletion (or the rebuild's
    /// end when nothing is left to replay); a crash or a failed commit before that deletes them again.
    /// </summary>
    public bool Wiped { get; set; }

    public long Transactions { get; set; }

    public long Bytes { get; set; }

    public long Refused { get; set; }

    public DateTimeOffset? CompletedAt { get; set; }

    /// <summary>Replayed batches since this process loaded the rebuild, and when the first ended (for the log line that closes it).</summary>
    public int Batches { get; set; }

    public DateTimeOffset? FirstBatchAt { get; set; }

    public bool Completed => CompletedAt is not null;

    /// <summary>The log no longer held offset 0 of some partition: what fell off is not replayed but copied.</summary>
    public bool LogTruncated => LogStart.Values.Any(o => o > 0);

    /// <summary>True for a transaction the rebuild replays rather than applies as new.</summary>
    public bool Replays(int partition, long offset) => !Completed && offset < ReplayUntil.GetValueOrDefault(partition);

    /// <summary>True once every partition's next offset has reached where the replay ends.</summary>
    public bool ReachedEnd(IReadOnlyDictionary<int, long> nextOffsets) =>
        ReplayUntil.All(kv => nextOffsets.GetValueOrDefault(kv.Key) >= kv.Value);

    public DeviceRebuildProgress Progress(IReadOnlyDictionary<int, long> nextOffsets) => new(
        Id,
        Completed ? "done" : Wiped ? "replaying" : "wiping",
        ByPartition(LogStart),
        ByPartition(ReplayUntil),
        ReplayUntil.ToDictionary(
            kv => kv.Key.ToString(CultureInfo.InvariantCulture),
            kv => Math.Min(kv.Value, Math.Max(nextOffsets.GetValueOrDefault(kv.Key), LogStart.GetValueOrDefault(kv.Key)))),
        LogTruncated, Transactions, Bytes, Refused, StartedAt, CompletedAt);

    private static Dictionary<string, long> ByPartition(Dictionary<int, long> offsets) =>
        offsets.ToDictionary(kv => kv.Key.ToString(CultureInfo.InvariantCulture), kv => kv.Value);
}
