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

    /// <summary>On dead-lettered messages: why the device refused it.</summary>
    public const string DeadLetterReason = "tm-dlq-reason";

    /// <summary>On dead-lettered messages: the topic, partition and offset it came from.</summary>
    public const string DeadLetterSource = "tm-dlq-source";
}
