namespace TaggedMirror.Controller.Reconciliation;

/// <summary>Event types of a volume's resync stream, <c>resync-&lt;volume&gt;</c>.</summary>
internal static class ResyncEventTypes
{
    public const string Completed = "resync_completed";

    public static string Stream(string volume) => "resync-" + volume;
}

/// <summary>
/// A range was copied from <paramref name="Source"/> to <paramref name="Target"/>: for one tag's write the
/// target missed (<paramref name="Tag"/> set), or as one step of a full copy (<paramref name="Tag"/> null).
/// </summary>
internal sealed record ResyncCompleted(
    string? Tag, string Target, string Source, long FirstBlock, int BlockCount, bool Extension, long BytesCopied, double DurationMs, string RepairTag);
