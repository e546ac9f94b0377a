using System.Runtime.InteropServices;
using TaggedMirror.KafkaNative;

namespace TaggedMirror.DevKafka;

/// <summary>
/// P/Invoke surface of librdkafka's mock cluster (<c>rdkafka_mock.h</c>), bound by
/// <see cref="Librdkafka"/> to the same librdkafka.redist file as the Kafka clients. Every mock call is a
/// request to the mock cluster's own thread that waits for completion, so the calls are thread-safe and
/// synchronous.
/// </summary>
internal static partial class NativeMethods
{
    private const string Library = Librdkafka.ImportName;

    internal const int RdKafkaProducer = 0;
    internal const int ConfOk = 0;

    // The explicit static constructor runs before the first P/Invoke of this class, whoever calls it.
    static NativeMethods() => Librdkafka.Install(typeof(NativeMethods).Assembly);

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_new")]
    internal static partial IntPtr ConfNew();

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_destroy")]
    internal static partial void ConfDestroy(IntPtr conf);

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_set", StringMarshalling = StringMarshalling.Utf8)]
    internal static unsafe partial int ConfSet(IntPtr conf, string name, string value, byte* errstr, nuint errstrSize);

    [LibraryImport(Library, EntryPoint = "rd_kafka_new")]
    internal static unsafe partial IntPtr KafkaNew(int type, IntPtr conf, byte* errstr, nuint errstrSize);

    [LibraryImport(Library, EntryPoint = "rd_kafka_destroy")]
    internal static partial void KafkaDestroy(IntPtr rk);

    [LibraryImport(Library, EntryPoint = "rd_kafka_version_str")]
    internal static partial IntPtr VersionStr();

    [LibraryImport(Library, EntryPoint = "rd_kafka_err2name")]
    internal static partial IntPtr Err2Name(int err);

    [LibraryImport(Library, EntryPoint = "rd_kafka_err2str")]
    internal static partial IntPtr Err2Str(int err);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_cluster_new")]
    internal static partial IntPtr MockClusterNew(IntPtr rk, int brokerCount);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_cluster_destroy")]
    internal static partial void MockClusterDestroy(IntPtr mcluster);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_cluster_bootstraps")]
    internal static partial IntPtr MockClusterBootstraps(IntPtr mcluster);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_topic_create", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int MockTopicCreate(IntPtr mcluster, string topic, int partitionCount, int replicationFactor);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_partition_set_leader", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int MockPartitionSetLeader(IntPtr mcluster, string topic, int partition, int brokerId);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_partition_delete_records", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int MockPartitionDeleteRecords(IntPtr mcluster, string topic, int partition, long beforeOffset);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_broker_set_down")]
    internal static partial int MockBrokerSetDown(IntPtr mcluster, int brokerId);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_broker_set_up")]
    internal static partial int MockBrokerSetUp(IntPtr mcluster, int brokerId);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_broker_set_rtt")]
    internal static partial int MockBrokerSetRtt(IntPtr mcluster, int brokerId, int rttMs);

    // The variadic rd_kafka_mock_push_request_errors is not callable safely from .NET;
    // the _array variant takes the same arguments as an array.
    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_push_request_errors_array")]
    internal static unsafe partial void MockPushRequestErrorsArray(IntPtr mcluster, short apiKey, nuint count, int* errors);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_clear_request_errors")]
    internal static partial void MockClearRequestErrors(IntPtr mcluster, short apiKey);

    internal static string DescribeError(int err)
    {
        var name = Marshal.PtrToStringUTF8(Err2Name(err)) ?? err.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var text = Marshal.PtrToStringUTF8(Err2Str(err)) ?? string.Empty;
        return $"{name} ({err}): {text}";
    }
}
