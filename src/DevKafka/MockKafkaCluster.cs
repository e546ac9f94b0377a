using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace TaggedMirror.DevKafka;

/// <summary>
/// An in-process Kafka cluster: librdkafka's mock cluster, speaking the real Kafka protocol on
/// loopback TCP, so any client (this process, another process, a tool such as kcat) connects with
/// <see cref="BootstrapServers"/>. Broker ids are 1..N.
/// </summary>
/// <remarks>
/// Limits of the mock (librdkafka.redist 2.16), which tests and callers must respect:
/// <list type="bullet">
/// <item>Memory only: everything is lost when the cluster is disposed or the process exits.</item>
/// <item>Each partition keeps at most 5 MiB or 100,000 message sets and silently drops the
/// oldest beyond that, so the log start offset moves up like a short retention. Consumers that
/// run with <c>auto.offset.reset=error</c> see this as <c>Local_AutoOffsetReset</c>.
/// <see cref="DeleteRecords"/> moves the log start the same way, at once.</item>
/// <item>Create topics with <see cref="CreateTopic"/> (or the clients' auto-create, which makes 4 partitions).</item>
/// <item>A broker set down only refuses connections; it keeps partition leadership, so move
/// leaders explicitly with <see cref="SetPartitionLeader"/> to simulate a failover.</item>
/// <item>Transactions are not isolated from non-transactional readers.</item>
/// </list>
/// </remarks>
public sealed class MockKafkaCluster : IDisposable
{
    private readonly Lock _gate = new();
    private IntPtr _handle;
    private IntPtr _cluster;

    private MockKafkaCluster(IntPtr handle, IntPtr cluster, int brokerCount, string bootstrapServers)
    {
        _handle = handle;
        _cluster = cluster;
        BrokerCount = brokerCount;
        BootstrapServers = bootstrapServers;
    }

    /// <summary>Comma-separated <c>host:port</c> list of the mock brokers.</summary>
    public string BootstrapServers { get; }

    /// <summary>Number of brokers; their ids are 1..<see cref="BrokerCount"/>.</summary>
    public int BrokerCount { get; }

    /// <summary>Starts a mock cluster with <paramref name="brokers"/> brokers on loopback.</summary>
    /// <exception cref="InvalidOperationException">librdkafka could not create the handle or cluster.</exception>
    public static unsafe MockKafkaCluster Start(int brokers = 3)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(brokers, 1);

        const int errSize = 512;
        var errstr = stackalloc byte[errSize];
        var conf = NativeMethods.ConfNew();
        // The hosting handle has no bootstrap servers of its own; keep it from warning about that.
        if (NativeMethods.ConfSet(conf, "log_level", "3", errstr, errSize) != NativeMethods.ConfOk)
        {
            NativeMethods.ConfDestroy(conf);
            throw new InvalidOperationException("rd_kafka_conf_set(log_level) failed: " + ReadError(errstr, errSize));
        }

        var handle = NativeMethods.KafkaNew(NativeMethods.RdKafkaProducer, conf, errstr, errSize);
        if (handle == IntPtr.Zero)
        {
            // rd_kafka_new takes ownership of conf only on success.
            NativeMethods.ConfDestroy(conf);
            throw new InvalidOperationException("rd_kafka_new failed: " + ReadError(errstr, errSize));
        }

        var cluster = NativeMethods.MockClusterNew(handle, brokers);
        if (cluster == IntPtr.Zero)
        {
            NativeMethods.KafkaDestroy(handle);
            throw new InvalidOperationException($"rd_kafka_mock_cluster_new({brokers}) failed.");
        }

        var bootstrap = Marshal.PtrToStringUTF8(NativeMethods.MockClusterBootstraps(cluster)) ?? string.Empty;
        return new MockKafkaCluster(handle, cluster, brokers, bootstrap);
    }

    /// <summary>The version of the librdkafka hosting the mock, e.g. <c>2.16.0</c>.</summary>
    public static string LibraryVersion => Marshal.PtrToStringUTF8(NativeMethods.VersionStr()) ?? string.Empty;

    /// <summary>Creates a topic.</summary>
    /// <exception cref="MockKafkaException">The mock refused, e.g. the topic already exists or the
    /// replication factor exceeds the broker count.</exception>
    public void CreateTopic(string topic, int partitions = 1, int replicationFactor = 3)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(topic);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(replicationFactor, 1);
        Check(
            Run(c => NativeMethods.MockTopicCreate(c, topic, partitions, replicationFactor)),
            $"create topic '{topic}' ({partitions} partitions, replication factor {replicationFactor})");
    }

    /// <summary>
    /// Deletes the records of the partition before <paramref name="beforeOffset"/>, as retention or a
    /// DeleteRecords request does: the log start offset becomes <paramref name="beforeOffset"/>, and a consumer
    /// positioned below it finds its offset out of range.
    /// </summary>
    /// <exception cref="MockKafkaException">The partition does not exist, or <paramref name="beforeOffset"/> is
    /// beyond the log end (<c>OFFSET_OUT_OF_RANGE</c>).</exception>
    public void DeleteRecords(string topic, int partition, long beforeOffset)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(topic);
        ArgumentOutOfRangeException.ThrowIfNegative(partition);
        ArgumentOutOfRangeException.ThrowIfNegative(beforeOffset);
        Check(
            Run(c => NativeMethods.MockPartitionDeleteRecords(c, topic, partition, beforeOffset)),
            string.Create(CultureInfo.InvariantCulture, $"delete the records of {topic}[{partition}] before offset {beforeOffset}"));
    }

    /// <summary>Disconnects the broker and refuses new connections. Leadership does not move.</summary>
    public void SetBrokerDown(int brokerId)
    {
        ValidBroker(brokerId);
        Check(Run(c => NativeMethods.MockBrokerSetDown(c, brokerId)), $"set broker {brokerId} down");
    }

    /// <summary>Makes the broker accept connections again.</summary>
    public void SetBrokerUp(int brokerId)
    {
        ValidBroker(brokerId);
        Check(Run(c => NativeMethods.MockBrokerSetUp(c, brokerId)), $"set broker {brokerId} up");
    }

    /// <summary>Makes <paramref name="brokerId"/> the leader of the partition (creates the topic if absent).</summary>
    public void SetPartitionLeader(string topic, int partition, int brokerId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(topic);
        ArgumentOutOfRangeException.ThrowIfNegative(partition);
        ValidBroker(brokerId);
        Check(
            Run(c => NativeMethods.MockPartitionSetLeader(c, topic, partition, brokerId)),
            $"set leader of {topic}[{partition}] to broker {brokerId}");
    }

    /// <summary>Adds <paramref name="ms"/> milliseconds of round-trip delay to every response of the broker.</summary>
    public void SetBrokerRtt(int brokerId, int ms)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ms);
        ValidBroker(brokerId);
        Check(Run(c => NativeMethods.MockBrokerSetRtt(c, brokerId, ms)), $"set broker {brokerId} rtt");
    }

    /// <summary>
    /// Makes the next <c>errorCodes.Length</c> requests with Kafka API key <paramref name="apiKey"/>
    /// (e.g. 0 = Produce, 1 = Fetch) fail with the given Kafka error codes, in order, on any broker.
    /// </summary>
    public unsafe void PushRequestErrors(short apiKey, params int[] errorCodes)
    {
        ArgumentNullException.ThrowIfNull(errorCodes);
        if (errorCodes.Length == 0)
        {
            return;
        }

        lock (_gate)
        {
            fixed (int* errors = errorCodes)
            {
                NativeMethods.MockPushRequestErrorsArray(LiveCluster(), apiKey, (nuint)errorCodes.Length, errors);
            }
        }
    }

    /// <summary>Drops any errors still queued by <see cref="PushRequestErrors"/> for the API key.</summary>
    public void ClearRequestErrors(short apiKey) =>
        Run(c =>
        {
            NativeMethods.MockClearRequestErrors(c, apiKey);
            return 0;
        });

    /// <summary>Stops the brokers and releases the native handles; idempotent.</summary>
    public void Dispose()
    {
        IntPtr cluster;
        IntPtr handle;
        lock (_gate)
        {
            cluster = _cluster;
            handle = _handle;
            _cluster = IntPtr.Zero;
            _handle = IntPtr.Zero;
        }

        if (cluster != IntPtr.Zero)
        {
            NativeMethods.MockClusterDestroy(cluster);
        }

        if (handle != IntPtr.Zero)
        {
            NativeMethods.KafkaDestroy(handle);
        }
    }

    private static unsafe string ReadError(byte* errstr, int size)
    {
        var span = new ReadOnlySpan<byte>(errstr, size);
        var end = span.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? span : span[..end]);
    }

    private static void Check(int err, string what)
    {
        if (err != 0)
        {
            throw new MockKafkaException(err, $"Mock Kafka cluster could not {what}: {NativeMethods.DescribeError(err)}");
        }
    }

    private void ValidBroker(int brokerId)
    {
        if (brokerId < 1 || brokerId > BrokerCount)
        {
            throw new ArgumentOutOfRangeException(
                nameof(brokerId),
                brokerId,
                string.Create(CultureInfo.InvariantCulture, $"Broker ids are 1..{BrokerCount}."));
        }
    }

    // Native calls run under the gate so Dispose cannot free the cluster while a fault is being
    // injected from another thread (the devkafka control channel does that).
    private int Run(Func<IntPtr, int> call)
    {
        lock (_gate)
        {
            return call(LiveCluster());
        }
    }

    private IntPtr LiveCluster()
    {
        ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
        return _cluster;
    }
}
