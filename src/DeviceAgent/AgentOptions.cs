namespace TaggedMirror.DeviceAgent;

/// <summary>Settings of one device agent, bound from the <c>Agent</c> section (<c>Agent__DeviceId</c>, …).</summary>
public sealed class AgentOptions
{
    public const string Section = "Agent";

    /// <summary>The device this agent is. Its topic is <c>tm.device.&lt;DeviceId&gt;</c>.</summary>
    public string DeviceId { get; set; } = "";

    /// <summary>Where the storage objects live, one file each.</summary>
    public string DataDirectory { get; set; } = "";

    /// <summary>The URL the controller reaches this agent's read endpoint at (registered in PostgreSQL).</summary>
    public string PublicUrl { get; set; } = "";

    /// <summary>Most transactions applied and recorded in one PostgreSQL transaction.</summary>
    public int BatchMaxMessages { get; set; } = 1000;

    /// <summary>Most data bytes in one batch.</summary>
    public int BatchMaxBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>Live entries older than this are acknowledged again (an acknowledgement may have been lost).</summary>
    public TimeSpan ReacknowledgeAfter { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a refused transaction may wait for the dead-letter topic (librdkafka retries within it). After
    /// that the refusal, with the transaction's bytes, is kept in the device's stream instead: an unreachable
    /// dead-letter topic must not stop the device.
    /// </summary>
    public TimeSpan DeadLetterTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public void Validate()
    {
        if (!Contracts.Names.IsValid(DeviceId))
            throw new InvalidOperationException($"Agent__DeviceId '{DeviceId}' is not a valid device name (lower-case letters, digits, dashes).");
        if (string.IsNullOrWhiteSpace(DataDirectory))
            throw new InvalidOperationException("Agent__DataDirectory is required.");
        ArgumentOutOfRangeException.ThrowIfLessThan(BatchMaxMessages, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(BatchMaxBytes, 65536);
        ArgumentOutOfRangeException.ThrowIfLessThan(DeadLetterTimeout, TimeSpan.FromSeconds(1));
    }
}
