using TaggedMirror.Contracts.Transactions;

namespace TaggedMirror.Contracts.TagTable;

/// <summary>Names of the tag-table event types as stored in the event store.</summary>
public static class TagTableEventTypes
{
    /// <summary><see cref="TagRecorded"/>.</summary>
    public const string Recorded = "tag_recorded";

    /// <summary><see cref="TagRetired"/>.</summary>
    public const string Retired = "tag_retired";

    /// <summary><see cref="LogTruncated"/>.</summary>
    public const string Truncated = "log_truncated";

    /// <summary><see cref="BarrierPassed"/>.</summary>
    public const string Barrier = "barrier_passed";

    /// <summary><see cref="TransactionQuarantined"/>.</summary>
    public const string Quarantined = "transaction_quarantined";

    /// <summary><see cref="FencePassed"/>.</summary>
    public const string Fence = "fence_passed";

    /// <summary><see cref="ObjectDeleted"/>.</summary>
    public const string ObjectDeleted = "object_deleted";

    /// <summary>The event stream of one device's tag table (M3: the table lives with the device).</summary>
    public static string Stream(string deviceId) => "tagtable-" + deviceId;
}

/// <summary>
/// A device applied a tagged transaction and keeps this entry until it is retired (M3).
/// <see cref="Token"/> is what the device hands back; the controller returns it once every mirror has the write (M5).
/// </summary>
/// <param name="Tag">The write's tag.</param>
/// <param name="Kind">Write, append or repair.</param>
/// <param name="ObjectId">The storage object written.</param>
/// <param name="FirstBlock">First block written; for an append, where it landed in the object.</param>
/// <param name="BlockCount">Blocks written.</param>
/// <param name="Extension">True when the data went to the object's extension (an append).</param>
/// <param name="Partition">Device topic partition the transaction came from.</param>
/// <param name="Offset">Its offset there.</param>
/// <param name="Token">The device's identity of this entry.</param>
/// <param name="TraceParent">W3C trace context of the copy's produce span, when the write was traced: reconciliation links its resync to it.</param>
/// <param name="OwnerEpoch">The sender's owner epoch of the volume (0 from a sender that had none): a fence of a later one closes this write's fate.</param>
/// <param name="Principal">Who asked for the write (header <c>tm-who</c>), null when it did not say (a repair, an older controller).</param>
/// <param name="RequestId">For a write that came through the intake, the producer's request (<c>producer/request</c>, header <c>tm-req</c>): the controller finds a request written before its outcome was recorded by it.</param>
public sealed record TagRecorded(
    Tag Tag,
    TransactionKind Kind,
    string ObjectId,
    long FirstBlock,
    int BlockCount,
    bool Extension,
    int Partition,
    long Offset,
    long Token,
    string? TraceParent = null,
    long OwnerEpoch = 0,
    string? RequestId = null,
    string? Principal = null);

/// <summary>A tag-table entry is gone: its token came back, or reconciliation matched it on every mirror.</summary>
/// <param name="Tag">The entry's tag.</param>
/// <param name="Token">The entry's token.</param>
/// <param name="Reason">Why: <c>token</c> or <c>reconciled</c>.</param>
public sealed record TagRetired(Tag Tag, long Token, string Reason);

/// <summary>The device's next offset had fallen off the log: its objects need a full copy from a healthy mirror.</summary>
/// <param name="Partition">The partition.</param>
/// <param name="ExpectedOffset">The offset the device needed next.</param>
/// <param name="LogStartOffset">The oldest offset the log still held.</param>
public sealed record LogTruncated(int Partition, long ExpectedOffset, long LogStartOffset);

/// <summary>
/// The device applied everything before a controller's barrier in this partition (flow 4): every write of
/// (<paramref name="ControllerId"/>, <paramref name="Epoch"/>) up to <paramref name="UpToSeq"/>, and every write of
/// that controller's earlier epochs, has reached this device or never will. Coalesced: one per controller
/// and partition per applied batch, the latest.
/// </summary>
/// <param name="ControllerId">The controller.</param>
/// <param name="Epoch">Its epoch.</param>
/// <param name="UpToSeq">Highest sequence covered.</param>
/// <param name="Partition">Partition the barrier came through.</param>
/// <param name="Offset">Its offset there.</param>
public sealed record BarrierPassed(int ControllerId, int Epoch, long UpToSeq, int Partition, long Offset);

/// <summary>
/// The device passed a volume owner's fence: from here on it refuses writes to <paramref name="ObjectId"/> from
/// older owner epochs. The fence is in the partition every write to the object goes to (same key), so every
/// write of an older owner that the device has no entry for by now will never reach it.
/// </summary>
/// <param name="ObjectId">The storage object (one volume's on this device).</param>
/// <param name="OwnerEpoch">The new owner's epoch of the volume.</param>
/// <param name="ControllerId">The new owner.</param>
/// <param name="Epoch">The new owner's controller epoch.</param>
/// <param name="Partition">Partition the fence came through.</param>
/// <param name="Offset">Its offset there.</param>
public sealed record FencePassed(string ObjectId, long OwnerEpoch, int ControllerId, int Epoch, int Partition, long Offset);

/// <summary>
/// The device applied a <see cref="TransactionKind.Delete"/>: <paramref name="ObjectId"/>'s files and geometry are
/// gone, and each of its live tag-table entries was retired (a <see cref="TagRetired"/> with reason
/// <c>object deleted</c> before this event, in the same batch). Recorded also when the device did not have the
/// object (then <paramref name="EntriesRetired"/> is 0), so the sender sees every delete applied. Not a tag-table
/// entry: no token, no acknowledgement. A write of the same object id after it in the partition creates a new,
/// empty object.
/// </summary>
/// <param name="ObjectId">The storage object deleted (one volume's on this device).</param>
/// <param name="Tag">The delete's tag.</param>
/// <param name="Partition">Partition the delete came through.</param>
/// <param name="Offset">Its offset there.</param>
/// <param name="EntriesRetired">Live entries of the object it retired.</param>
public sealed record ObjectDeleted(string ObjectId, Tag Tag, int Partition, long Offset, int EntriesRetired);

/// <summary>
/// The device refused a transaction (it could not be applied: corrupt, out of range, a bad object id) and will
/// never apply it. Recorded with the batch, so the refusal is durable even when the dead-letter topic is not
/// reachable; then <paramref name="Header"/>, <paramref name="ObjectId"/> and <paramref name="Value"/> keep the
/// transaction itself. Not a tag-table entry: it changes no block and carries no token.
/// </summary>
/// <param name="Partition">Device topic partition it came from.</param>
/// <param name="Offset">Its offset there.</param>
/// <param name="Reason">Why it was refused.</param>
/// <param name="Tag">Text form of its tag, when its header could be read.</param>
/// <param name="DeadLettered">True when it is on the device's dead-letter topic too.</param>
/// <param name="Header">Its raw <c>tm-h</c> header, when it is not on the dead-letter topic.</param>
/// <param name="ObjectId">Its raw <c>tm-obj</c> header, when it is not on the dead-letter topic.</param>
/// <param name="Value">Its data, when it is not on the dead-letter topic.</param>
public sealed record TransactionQuarantined(
    int Partition,
    long Offset,
    string Reason,
    string? Tag,
    bool DeadLettered,
    byte[]? Header = null,
    byte[]? ObjectId = null,
    byte[]? Value = null);
