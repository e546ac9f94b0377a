namespace TaggedMirror.DevKafka;

/// <summary>A mock cluster operation failed with a librdkafka error code.</summary>
public sealed class MockKafkaException : Exception
{
    public MockKafkaException()
    {
    }

    public MockKafkaException(string message)
        : base(message)
    {
    }

    public MockKafkaException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception for librdkafka error <paramref name="errorCode"/>.</summary>
    public MockKafkaException(int errorCode, string message)
        : base(message)
    {
        ErrorCode = errorCode;
    }

    /// <summary>The <c>rd_kafka_resp_err_t</c> value (same numbering as Confluent's <c>ErrorCode</c>).</summary>
    public int ErrorCode { get; }
}
