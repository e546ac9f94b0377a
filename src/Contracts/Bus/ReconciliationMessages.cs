namespace TaggedMirror.Contracts.Bus;

/// <summary>
/// Reconciliation found a write that reached some mirrors and provably never will reach <paramref name="TargetDevice"/>
/// (it passed a barrier covering the tag): copy that range from a mirror that has it (M4, flow 5).
/// Doing the same request twice is harmless.
/// </summary>
/// <param name="Volume">The volume.</param>
/// <param name="Tag">The write's tag (text form).</param>
/// <param name="FirstBlock">First block of the range (in the extension for an append).</param>
/// <param name="BlockCount">Blocks in the range.</param>
/// <param name="Extension">True when the range is in the objects' extension.</param>
/// <param name="SourceDevice">A device that recorded the write.</param>
/// <param name="TargetDevice">The device that lacks it.</param>
/// <param name="TraceParent">W3C trace context of the write being repaired, when it was traced: the resync's spans link to it.</param>
public sealed record ResyncRequested(
    string Volume, string Tag, long FirstBlock, int BlockCount, bool Extension, string SourceDevice, string TargetDevice, string? TraceParent = null);

/// <summary>
/// Entries every mirror has (or had repaired) whose tokens never came back, e.g. the controller died before
/// piggybacking them: the owning controller sends these tokens so the devices retire the entries.
/// </summary>
/// <param name="Volume">The volume.</param>
/// <param name="Entries">Device and token of each entry.</param>
public sealed record RetireEntries(string Volume, DeviceToken[] Entries);

/// <summary>A device's tag-table entry, by its token.</summary>
/// <param name="DeviceId">The device.</param>
/// <param name="Token">The entry's token.</param>
/// <param name="Tag">
/// Text form of the entry's tag, when known: reconciliation retires an entry only once every mirror has the
/// write, so the owner also settles the write if it is still waiting for an acknowledgement that was lost.
/// </param>
public sealed record DeviceToken(string DeviceId, long Token, string? Tag = null);
