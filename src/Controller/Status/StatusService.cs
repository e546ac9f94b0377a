using Confluent.Kafka;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.EventStore;
using TaggedMirror.Hosting.Kafka;

namespace TaggedMirror.Controller.Status;

/// <summary>
/// Builds volume status: mirror states, live tag-table entries per device (from PostgreSQL), and device lag
/// (log end minus the offset the device has recorded as applied).
/// </summary>
internal sealed class StatusService(PgEventStore store, DeviceLog log) : IDisposable
{
    private readonly Lazy<IConsumer<byte[], byte[]>> _probe = new(() =>
        new ConsumerBuilder<byte[], byte[]>(KafkaSettings.DeviceConsumer(log.Bootstrap, "status-probe")).Build());

    public async Task<VolumeStatus> GetAsync(Volume v, CancellationToken ct)
    {
        var live = new Dictionary<string, long>(StringComparer.Ordinal);
        var applied = new Dictionary<(string Device, int Partition), long>();
        await using (var cmd = store.DataSource.CreateCommand(
            $"SELECT device_id, count(*) FROM {store.Schema}.tag_table WHERE object_id = ANY(@o) GROUP BY device_id"))
        {
            cmd.Parameters.AddWithValue("o", v.Mirrors.Select(m => m.ObjectId).ToArray());
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) live[r.GetString(0)] = r.GetInt64(1);
        }
        await using (var cmd = store.DataSource.CreateCommand(
            $"SELECT device_id, partition, next_offset FROM {store.Schema}.device_offsets WHERE device_id = ANY(@d)"))
        {
            cmd.Parameters.AddWithValue("d", v.Mirrors.Select(m => m.DeviceId).ToArray());
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) applied[(r.GetString(0), r.GetInt32(1))] = r.GetInt64(2);
        }
        var mirrors = v.Mirrors.Select(m =>
        {
            var channel = log.Channel(m.DeviceId);
            var (end, done) = Lag(channel.Topic, m.DeviceId, applied);
            return new MirrorStatus(m.DeviceId, m.ObjectId, m.State.ToString(), m.Reason, live.GetValueOrDefault(m.DeviceId),
                channel.UnappliedBytes, channel.PendingTokens, end, done, Math.Max(0, end - done));
        }).ToArray();
        return new VolumeStatus(v.Name, v.BlockSize, v.Blocks, v.ExtensionBlocks, v.MinMirrors, v.Owned,
            Interlocked.Read(ref v.WritesAccepted), Interlocked.Read(ref v.BytesAccepted), v.Inflight.Count, mirrors);
    }

    /// <summary>Sum over the partitions the device has recorded: log end and applied offset.</summary>
    private (long End, long Applied) Lag(string topic, string deviceId, Dictionary<(string Device, int Partition), long> applied)
    {
        long end = 0, done = 0;
        foreach (var ((device, partition), offset) in applied)
        {
            if (device != deviceId) continue;
            try
            {
                end += _probe.Value.QueryWatermarkOffsets(new TopicPartition(topic, partition), TimeSpan.FromSeconds(2)).High.Value;
            }
            catch (KafkaException)
            {
                end += offset; // log unreachable: report no lag rather than a made-up one
            }
            done += offset;
        }
        return (end, done);
    }

    public void Dispose()
    {
        if (_probe.IsValueCreated) _probe.Value.Dispose();
    }
}
