namespace TaggedMirror.Controller.Volumes;

/// <summary>Event types of a volume's stream, <c>volume-&lt;name&gt;</c>.</summary>
internal static class VolumeEventTypes
{
    public const string Created = "volume_created";
    public const string MirrorStateChanged = "mirror_state_changed";
    public const string ExtensionReserved = "extension_reserved";
    public const string VerifyCompleted = "verify_completed";

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
