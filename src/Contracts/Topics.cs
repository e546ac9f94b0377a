namespace TaggedMirror.Contracts;

/// <summary>Kafka topic names. One topic per device keeps every transaction for a device in one ordered log.</summary>
public static class Topics
{
    /// <summary>Prefix of device topics.</summary>
    public const string DevicePrefix = "tm.device.";

    /// <summary>The topic a device agent consumes: every write, repair, append and barrier for that device.</summary>
    public static string Device(string deviceId) => DevicePrefix + deviceId;

    /// <summary>Where a device agent puts transactions it cannot accept, with the reason in a header.</summary>
    public static string DeadLetter(string deviceId) => "tm.deadletter." + deviceId;
}
