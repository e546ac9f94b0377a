namespace TaggedMirror.Controller.Reconciliation;

/// <summary>Event types of a volume's resync stream, <c>resync-&lt;volume&gt;</c>.</summary>
internal static class ResyncEventTypes
{
    public const string Completed = "resync_completed";

    public static string Stream(string volume) => "resync-" + volume;
}

/// <summary>
/// A range was copied from <paramref name="Source"/> to <paramref name="Target"/>: for writes the target missed
/// (<paramref name="Tag"/> set: the first of them), or as one step of a full copy (<paramref name="Tag"/> null).
/// <paramref name="Tags"/> are the missed writes this copy completes: every block of theirs is on the target once
/// it is recorded (a coalesced range may complete several, or none when the run it belongs to goes on in a later
/// chunk). Events written before coalescing have no <paramref name="Tags"/>: they complete <paramref name="Tag"/>.
/// </summary>
internal sealed record ResyncCompleted(
    string? Tag, string Target, string Source, long FirstBlock, int BlockCount, bool Extension, long BytesCopied, double DurationMs, string RepairTag,
    IReadOnlyList<string>? Tags = null)
{
    /// <summary>The missed writes this copy completes.</summary>
    public IReadOnlyList<string> Completed() => Tags ?? (Tag is null ? [] : [Tag]);
}
