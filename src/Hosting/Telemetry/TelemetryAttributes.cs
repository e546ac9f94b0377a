namespace TaggedMirror.Hosting.Telemetry;

/// <summary>
/// Span and metric attribute names that more than one place sets (the controller and the agents, or spans and
/// meters alike): one spelling, so a trace viewer query or a dashboard finds them all.
/// </summary>
public static class TelemetryAttributes
{
    /// <summary><c>tm.volume</c>.</summary>
    public const string Volume = "tm.volume";

    /// <summary><c>tm.device</c>.</summary>
    public const string Device = "tm.device";

    /// <summary><c>tm.tag</c>: a write's tag, <c>controller:epoch:seq</c>.</summary>
    public const string Tag = "tm.tag";

    /// <summary><c>tm.kind</c>: write, append or repair.</summary>
    public const string Kind = "tm.kind";

    /// <summary><c>tm.first_block</c>.</summary>
    public const string FirstBlock = "tm.first_block";

    /// <summary><c>tm.blocks</c>.</summary>
    public const string Blocks = "tm.blocks";

    /// <summary><c>tm.resync.source</c>: the device a resync copies from.</summary>
    public const string ResyncSource = "tm.resync.source";

    /// <summary><c>tm.resync.target</c>: the device a resync copies to.</summary>
    public const string ResyncTarget = "tm.resync.target";

    /// <summary>The missed writes (tags, comma-separated) one resync of a volume's mirror coalesces.</summary>
    public const string ResyncTags = "tm.resync.tags";
}
