namespace TaggedMirror.Contracts.Bus;

/// <summary>
/// A device agent recorded these entries (batched per applied batch): the acknowledgement with tokens (flow 2).
/// Sent again for every live entry when an agent starts, so an acknowledgement lost in a crash is not lost for good.
/// </summary>
/// <param name="DeviceId">The device.</param>
/// <param name="Entries">Entries recorded.</param>
/// <param name="Offsets">The device's next offset per partition after this batch.</param>
public sealed record DeviceApplied(string DeviceId, AppliedEntry[] Entries, PartitionOffset[] Offsets);

/// <summary>One recorded entry.</summary>
/// <param name="Tag">Text form of the tag (<c>controller:epoch:seq</c>).</param>
/// <param name="ObjectId">Object written.</param>
/// <param name="FirstBlock">First block (for appends, where it landed).</param>
/// <param name="BlockCount">Blocks written.</param>
/// <param name="Token">Token to piggyback back to this device once every mirror has the write.</param>
public sealed record AppliedEntry(string Tag, string ObjectId, long FirstBlock, int BlockCount, long Token);

/// <summary>A partition and the next offset to consume there.</summary>
/// <param name="Partition">Partition number.</param>
/// <param name="NextOffset">Next offset the device will apply.</param>
public sealed record PartitionOffset(int Partition, long NextOffset);

/// <summary>The device's next offset fell off the log (retention): every object on it needs a full copy.</summary>
/// <param name="DeviceId">The device.</param>
/// <param name="Partition">Partition.</param>
/// <param name="ExpectedOffset">Offset the device needed.</param>
/// <param name="LogStartOffset">Oldest offset still in the log.</param>
/// <param name="ObjectIds">Objects the device holds.</param>
public sealed record DeviceLogTruncated(string DeviceId, int Partition, long ExpectedOffset, long LogStartOffset, string[] ObjectIds);

/// <summary>
/// A transaction was refused and put on the device's dead-letter topic (or, when that topic could not be
/// reached, recorded as quarantined in the device's stream). It will never be applied there: a controller
/// that still waits for that copy settles it without this device.
/// </summary>
/// <param name="DeviceId">The device.</param>
/// <param name="Partition">Source partition.</param>
/// <param name="Offset">Source offset.</param>
/// <param name="Reason">Why it was refused.</param>
/// <param name="Tag">Text form of the transaction's tag; null when its header could not be read (no tag to trust).</param>
public sealed record TransactionDeadLettered(string DeviceId, int Partition, long Offset, string Reason, string? Tag = null);

/// <summary>
/// The device cannot apply what it is sent (its disk is full, its block store fails): it stops applying,
/// skips nothing, and retries with backoff. Sent at every failed attempt, so one lost on the bus is sent again;
/// the controller degrades the device's mirrors, and they come back through resync once its log is applied.
/// </summary>
/// <param name="DeviceId">The device.</param>
/// <param name="Reason">What failed, for a person.</param>
/// <param name="Since">When the fault began.</param>
public sealed record DeviceFaulted(string DeviceId, string Reason, DateTimeOffset Since);
