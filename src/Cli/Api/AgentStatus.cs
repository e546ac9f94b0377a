namespace TaggedMirror.Cli.Api;

/// <summary>What a device agent's <c>GET /status</c> answers (the fields the CLI uses).</summary>
internal sealed record AgentStatus(
    string DeviceId,
    bool Running,
    string? LastError,
    bool TruncationDetected,
    long LiveEntries,
    long AppliedTransactions,
    long AppliedBytes,
    long DeadLettered,
    AgentObject[] Objects);
