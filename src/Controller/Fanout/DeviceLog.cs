using Confluent.Kafka;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Kafka;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Fanout;

/// <summary>
/// The producer side of the device topics, and the per-device channels. One idempotent producer (acks=all)
/// per device: librdkafka keeps each partition's order, and a device whose broker is down cannot stall the
/// others. (With one shared idempotent producer, a timed-out message makes librdkafka drain and bump the
/// producer epoch for every partition, and the healthy mirror's copies time out too.)
/// </summary>
internal sealed class DeviceLog : IDisposable
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, DeviceChannel> _channels = new(StringComparer.Ordinal);
    private readonly Lock _creating = new();
    private readonly ControllerOptions _options;
    private readonly string _bootstrap;

    public DeviceLog(TaggedMirrorOptions cluster, ControllerOptions options)
    {
        _options = options;
        _bootstrap = cluster.ResolveKafkaBootstrap();
    }

    public string Bootstrap => _bootstrap;

    public DeviceChannel Channel(string deviceId)
    {
        if (_channels.TryGetValue(deviceId, out var channel)) return channel;
        // Created under a lock: two callers racing in GetOrAdd would each build a producer, and the one dropped (its
        // threads and connections) would never be disposed.
        lock (_creating)
        {
            if (_channels.TryGetValue(deviceId, out channel)) return channel;
            var config = KafkaSettings.Producer(_bootstrap, $"tm-controller-{_options.Id}-{deviceId}", _options.DeliveryTimeout);
            config.MessageMaxBytes = _options.MaxWriteBytes + 256 * 1024;
            channel = new DeviceChannel(deviceId, _options.MaxLagBytes, _options.RepairBytesInFlight, new ProducerBuilder<byte[]?, byte[]?>(config).Build());
            _channels[deviceId] = channel;
            return channel;
        }
    }

    public IEnumerable<DeviceChannel> Channels => _channels.Values;

    /// <summary>
    /// Enqueues one transaction. The message is in librdkafka's queue when this returns (so calls made in
    /// order under the volume's lock reach each partition in that order); the task completes on delivery.
    /// </summary>
    public Task<DeliveryResult<byte[]?, byte[]?>> SendAsync(
        DeviceChannel channel, byte[] key, in TransactionHeader fields, byte[] objectId, ReadOnlySpan<long> tokens, byte[] data,
        System.Diagnostics.Activity? span = null, WriteOrigin origin = default)
        => channel.Producer.ProduceAsync(channel.Topic, Transaction(key, fields, objectId, tokens, data, span, origin));

    /// <summary>A transaction's message as it goes to a device topic: the data as the value, the header, object id and tokens as headers.</summary>
    internal static Message<byte[]?, byte[]?> Transaction(
        byte[] key, in TransactionHeader fields, byte[] objectId, ReadOnlySpan<long> tokens, byte[] data,
        System.Diagnostics.Activity? span = null, WriteOrigin origin = default)
    {
        var tokenBytes = tokens.IsEmpty ? null : new byte[tokens.Length * 8];
        if (tokenBytes is not null) TransactionCodec.WriteTokens(tokens, tokenBytes);
        var header = new byte[TransactionHeader.Size];
        TransactionCodec.WriteHeader(header, fields, objectId, tokenBytes, data);
        var headers = new Headers { { HeaderNames.Header, header }, { HeaderNames.Object, objectId } };
        if (tokenBytes is not null) headers.Add(HeaderNames.Tokens, tokenBytes);
        if (origin.RequestId is not null) headers.Add(HeaderNames.RequestId, origin.RequestId);
        if (origin.Principal is not null) headers.Add(HeaderNames.Principal, origin.Principal);
        KafkaTracing.Inject(span, headers);
        return new Message<byte[]?, byte[]?> { Key = key, Value = data, Headers = headers };
    }

    /// <summary>Sends a barrier to one partition of the device's topic: every partition must see every barrier.</summary>
    public Task<DeliveryResult<byte[]?, byte[]?>> SendBarrierAsync(DeviceChannel channel, int partition, Tag tag, ReadOnlySpan<long> tokens)
    {
        var tokenBytes = tokens.IsEmpty ? null : new byte[tokens.Length * 8];
        if (tokenBytes is not null) TransactionCodec.WriteTokens(tokens, tokenBytes);
        var header = new byte[TransactionHeader.Size];
        TransactionCodec.WriteHeader(header, new TransactionHeader(TransactionKind.Barrier, tag, 0, 0, 0, 0), [], tokenBytes, []);
        var headers = new Headers { { HeaderNames.Header, header } };
        if (tokenBytes is not null) headers.Add(HeaderNames.Tokens, tokenBytes);
        return channel.Producer.ProduceAsync(new TopicPartition(channel.Topic, partition), new Message<byte[]?, byte[]?> { Key = BarrierKey, Value = [], Headers = headers });
    }

    /// <summary>
    /// Sends an owner fence for one mirror: keyed by the object id like its writes, so it lands in the partition
    /// they all go to, and the device refuses the object's writes from older owner epochs once it passed it.
    /// </summary>
    public Task<DeliveryResult<byte[]?, byte[]?>> SendFenceAsync(DeviceChannel channel, byte[] objectId, Tag tag, int blockSize, long objectBlocks, long ownerEpoch)
    {
        var header = new byte[TransactionHeader.Size];
        TransactionCodec.WriteHeader(header, new TransactionHeader(TransactionKind.Fence, tag, 0, 0, blockSize, objectBlocks, OwnerEpoch: ownerEpoch), objectId, [], []);
        var headers = new Headers { { HeaderNames.Header, header }, { HeaderNames.Object, objectId } };
        return channel.Producer.ProduceAsync(channel.Topic, new Message<byte[]?, byte[]?> { Key = objectId, Value = [], Headers = headers });
    }

    /// <summary>
    /// Puts a <see cref="TransactionKind.Delete"/> of the object in the device's log, keyed like the object's writes so
    /// it lands after every one of them: the device removes the object's files and its live tag-table entries.
    /// </summary>
    public Task<DeliveryResult<byte[]?, byte[]?>> SendDeleteAsync(DeviceChannel channel, byte[] objectId, Tag tag, int blockSize, long objectBlocks, long ownerEpoch)
    {
        var header = new byte[TransactionHeader.Size];
        TransactionCodec.WriteHeader(header, new TransactionHeader(TransactionKind.Delete, tag, 0, 0, blockSize, objectBlocks, OwnerEpoch: ownerEpoch), objectId, [], []);
        var headers = new Headers { { HeaderNames.Header, header }, { HeaderNames.Object, objectId } };
        return channel.Producer.ProduceAsync(channel.Topic, new Message<byte[]?, byte[]?> { Key = objectId, Value = [], Headers = headers });
    }

    /// <summary>Partitions of a device topic, from the cluster's metadata (cached; [0] when unknown).</summary>
    public int[] PartitionsOf(DeviceChannel channel)
    {
        if (channel.Partitions is { Length: > 0 } known) return known;
        try
        {
            using var admin = new DependentAdminClientBuilder(channel.Producer.Handle).Build();
            var md = admin.GetMetadata(channel.Topic, TimeSpan.FromSeconds(5));
            var t = md.Topics.FirstOrDefault(x => x.Topic == channel.Topic);
            if (t is { Error.IsError: false, Partitions.Count: > 0 })
                return channel.Partitions = [.. t.Partitions.Select(p => p.PartitionId).Order()];
        }
        catch (KafkaException)
        {
        }
        return [0];
    }

    public void Flush(TimeSpan timeout)
    {
        foreach (var c in _channels.Values) c.Producer.Flush(timeout);
    }

    public void Dispose()
    {
        foreach (var c in _channels.Values)
        {
            c.Producer.Flush(TimeSpan.FromSeconds(5));
            c.LogProbe.Dispose();
            c.Producer.Dispose();
        }
    }

    public static readonly byte[] BarrierKey = "barrier"u8.ToArray();

}
