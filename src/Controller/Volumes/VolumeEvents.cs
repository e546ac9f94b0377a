namespace TaggedMirror.Controller.Volumes;

/// <summary>Event types of a volume's stream, <c>volume-&lt;name&gt;</c>.</summary>
internal static class VolumeEventTypes
{
    public const string Created = "volume_created";
    public const string MirrorStateChanged = "mirror_state_changed";
    public const string ExtensionReserved = "extension_reserved";
    public const string VerifyCompleted = "verify_completed";
    public const string MirrorAttached = "mirror_attached";
    public const string MirrorDetached = "mirror_detached";
    public const string Grown = "volume_grown";
    public const string Deleted = "volume_deleted";

    public static string Stream(string volume) => "volume-" + volume;
}

internal sealed record MirrorPlacement(string DeviceId, string ObjectId);

internal sealed record VolumeCreated(string Name, int BlockSize, long Blocks, int MinMirrors, MirrorPlacement[] Mirrors);

internal sealed record MirrorStateChanged(string DeviceId, MirrorState State, string Reason);

/// <summary>
/// Blocks of the extension given to one append, recorded before the append is sent: after a restart the
/// next append starts past every range ever handed out, even one still in flight in a device's log.
/// </summary>
internal sealed record ExtensionReserved(long FirstBlock, int Blocks);

/// <summary>
/// A mirror joined the volume (<c>tm attach</c>, or the first half of <c>tm replace</c>): from this event on it receives every
/// write, starts as <see cref="MirrorState.NeedsFullCopy"/> and is read from only once a full copy declared it in sync.
/// <paramref name="Replaces"/>: the device whose mirror is detached once this one is in sync (a replace), or null.
/// </summary>
internal sealed record MirrorAttached(string DeviceId, string ObjectId, string? Replaces, string Reason);

/// <summary>A mirror left the volume (<c>tm detach</c>, or the end of a replace): it receives nothing from this event on.</summary>
internal sealed record MirrorDetached(string DeviceId, string Reason);

/// <summary>
/// The volume's base range became <paramref name="Blocks"/> blocks (<c>tm grow</c>), at least its old base range and
/// extension together: the extension's blocks keep their numbers and are now in the base range, which reads zeros past them.
/// </summary>
internal sealed record VolumeGrown(long Blocks, long PreviousBlocks, long PreviousExtensionBlocks);

/// <summary>The volume was deleted (<c>tm delete</c>): its name is not taken again, its objects are removed from every device.</summary>
internal sealed record VolumeDeleted(string Name, string[] Devices);

/// <summary>A verify (scrub) of the volume ended: what it checked, what it found wrong and what it repaired.</summary>
internal sealed record VerifyCompleted(
    string Id, string State, long BlocksChecked, long RangesSkipped, IReadOnlyList<Contracts.Api.VerifyMismatch> Mismatches, long BytesRepaired, string? Error);

/// <summary>A mirror's state within a volume.</summary>
internal enum MirrorState
{
    /// <summary>Receives every write; a source for reads.</summary>
    InSync,

    /// <summary>Writes are not delivered to it (its log was undeliverable or it lagged too long). Not read from.</summary>
    Degraded,

    /// <summary>Receives writes again; reconciliation is copying what it missed. Not read from, not a resync source.</summary>
    Resyncing,

    /// <summary>It missed writes the log no longer holds: it still receives writes but needs a full copy. Not read from.</summary>
    NeedsFullCopy,

    /// <summary>
    /// Its device is being rebuilt from its log (<c>tm rebuild</c>): it receives writes (applied once the replay
    /// reaches them, so a lag never holds writes back nor degrades it), is not read from and not a copy source.
    /// When the replay is done it resyncs like any mirror that was away (<see cref="Resyncing"/>).
    /// </summary>
    Rebuilding,
}
