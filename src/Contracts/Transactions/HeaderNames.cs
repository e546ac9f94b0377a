namespace TaggedMirror.Contracts.Transactions;

/// <summary>Kafka header keys of a transaction. The message value is the raw data, nothing else.</summary>
public static class HeaderNames
{
    /// <summary>The fixed binary <see cref="TransactionHeader"/> with its CRC.</summary>
    public const string Header = "tm-h";

    /// <summary>UTF-8 storage object id (M6). Empty on barriers.</summary>
    public const string Object = "tm-obj";

    /// <summary>Tokens the device may retire (M5): little-endian int64s. Absent when there are none.</summary>
    public const string Tokens = "tm-tok";

    /// <summary>W3C trace context of the producing span.</summary>
    public const string TraceParent = "traceparent";

    /// <summary>W3C trace state, when present.</summary>
    public const string TraceState = "tracestate";

    /// <summary>
    /// On a write that came through the intake: the producer's request (<c>producer/request</c>, UTF-8), recorded by
    /// the device in <c>TagRecorded.RequestId</c> so a controller can tell whether a request was written already.
    /// </summary>
    public const string RequestId = "tm-req";

    /// <summary>
    /// Who asked for the write (<c>key:&lt;key id&gt;</c>, <c>nbd:&lt;client address&gt;</c>;
    /// UTF-8, printable ASCII, at most <see cref="MaxPrincipalBytes"/>): recorded by the device with the write's entry
    /// and in its block-writer table (docs/design.md, "Who wrote a block"). Never a secret. Absent on repairs.
    /// </summary>
    public const string Principal = "tm-who";

    /// <summary>Longest principal a device records; a longer or unprintable one is recorded as absent.</summary>
    public const int MaxPrincipalBytes = 128;

    /// <summary>On dead-lettered messages: why the device refused it.</summary>
    public const string DeadLetterReason = "tm-dlq-reason";

    /// <summary>On dead-lettered messages: the topic, partition and offset it came from.</summary>
    public const string DeadLetterSource = "tm-dlq-source";
}
