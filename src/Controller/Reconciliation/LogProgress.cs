using Confluent.Kafka;
using Npgsql;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;
using TaggedMirror.Hosting.Kafka;

namespace TaggedMirror.Controller.Reconciliation;

/// <summary>
/// Where each device's log ends and how far the device has applied it (its offsets, recorded in PostgreSQL
/// with its tag table). Used for lag in status and, before a resync reads a source, to wait until the source
/// has applied everything its log holds, including writes of an earlier epoch this controller never tracked.
/// </summary>
internal sealed class LogProgress(EventStreams store, DeviceLog log) : IDisposable
{
    private readonly Lazy<IConsumer<byte[], byte[]>> _probe = new(() =>
        new ConsumerBuilder<byte[], byte[]>(KafkaSettings.DeviceConsumer(log.Bootstrap, "progress-probe")).Build());
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Device, int Partition), CachedEnd> _ends = new();

    /// <summary>
    /// The last known log end, refreshed in the background: a status request never waits on a broker that is
    /// down (librdkafka may block on a partition whose leader is gone). Null until first known.
    /// </summary>
    public long? CachedLogEnd(string deviceId, int partition)
    {
        var key = (deviceId, partition);
        var cached = _ends.GetOrAdd(key, _ => new CachedEnd());
        if (DateTime.UtcNow - cached.At > TimeSpan.FromSeconds(1) && Interlocked.Exchange(ref cached.Refreshing, 1) == 0)
        {
            _ = Task.Run(() =>
            {
                try
                {
                    var end = LogEnd(deviceId, partition);
                    // Never backwards: a slower answer from an earlier moment must not undo a newer one.
                    if (end > Interlocked.Read(ref cached.Value)) Interlocked.Exchange(ref cached.Value, end);
                    cached.At = DateTime.UtcNow;
                }
                catch (KafkaException)
                {
                }
                finally
                {
                    Volatile.Write(ref cached.Refreshing, 0);
                }
            });
        }
        var value = Interlocked.Read(ref cached.Value);
        return value < 0 ? null : value;
    }

    private sealed class CachedEnd
    {
        // -1 until known; read and written atomically (a long? is two fields and could be read torn).
        public long Value = -1;
        public DateTime At = DateTime.MinValue;
        public int Refreshing;
    }

    public long LogEnd(string deviceId, int partition)
    {
        // librdkafka's watermark query is thread-safe: no lock, so a query stuck on a down broker blocks nobody else.
        var topicPartition = new TopicPartition(Contracts.Topics.Device(deviceId), partition);
        try
        {
            return _probe.Value.QueryWatermarkOffsets(topicPartition, TimeSpan.FromSeconds(5)).High.Value;
        }
        catch (KafkaException ex) when (ex.Error.Code is ErrorCode.Local_UnknownPartition or ErrorCode.Local_UnknownTopic or ErrorCode.UnknownTopicOrPart)
        {
            // librdkafka 2.x keeps what it first learnt of a topic nothing subscribes to: one whose leader was down
            // when the controller first asked stayed "unknown partition" after the leader came back, and a resync
            // waiting on that device's log waited for ever (seen with three mirrors, a controller started while one
            // device's broker was down). Ask the brokers for the topic again, then once more for the offsets.
            using var admin = new DependentAdminClientBuilder(_probe.Value.Handle).Build();
            admin.GetMetadata(topicPartition.Topic, TimeSpan.FromSeconds(5));
            return _probe.Value.QueryWatermarkOffsets(topicPartition, TimeSpan.FromSeconds(5)).High.Value;
        }
    }

    /// <summary>
    /// Log end (as last seen) and applied offset, summed over the device topic's partitions and any it has
    /// recorded; a partition it never recorded counts from 0, so a device that applied nothing yet shows its
    /// whole log as lag. Used by volume status and the <c>tm.device.lag</c> gauge alike.
    /// </summary>
    public (long End, long Applied) Lag(DeviceChannel channel, IReadOnlyDictionary<int, long> applied)
    {
        long end = 0, done = 0;
        foreach (var partition in (channel.Partitions ?? []).Union(applied.Keys))
        {
            var offset = applied.GetValueOrDefault(partition);
            // Unknown yet (or the log is unreachable): report no lag rather than a made-up one.
            end += Math.Max(offset, CachedLogEnd(channel.DeviceId, partition) ?? offset);
            done += offset;
        }
        return (end, done);
    }

    public async Task<Dictionary<int, long>> AppliedAsync(string deviceId, CancellationToken ct) => (await AppliedStateAsync(deviceId, withLost: false, ct)).Offsets;

    /// <summary>
    /// The device's applied offsets, and (<paramref name="withLost"/>) its objects that lost writes to a truncation of its log and have not been
    /// copied in full since: marked <c>needs_full_copy</c> by the device (in the transaction that moved its offsets
    /// past what it lost) and not covered by a <c>full_copies</c> record of its latest truncation. Offsets are read
    /// first: a later statement sees at least the marks of the commit that moved them.
    /// </summary>
    private async Task<AppliedState> AppliedStateAsync(string deviceId, bool withLost, CancellationToken ct)
    {
        var s = store.Schema;
        var offsets = new Dictionary<int, long>();
        var lost = new HashSet<string>(StringComparer.Ordinal);
        await using var batch = store.DataSource.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand($"SELECT partition, next_offset FROM {s}.device_offsets WHERE device_id = @d") { Parameters = { new("d", deviceId) } });
        if (withLost)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand($"""
                SELECT o.object_id FROM {s}.device_objects o
                WHERE o.device_id = @d AND o.needs_full_copy
                  AND NOT EXISTS (SELECT 1 FROM {s}.full_copies f
                                  WHERE f.device_id = o.device_id AND f.object_id = o.object_id AND {FullCopy.FullCopyService.CoversLatestTruncation(s, "f")})
                """)
            {
                Parameters = { new("d", deviceId), new("s", Contracts.TagTable.TagTableEventTypes.Stream(deviceId)), new("t", Contracts.TagTable.TagTableEventTypes.Truncated) },
            });
        }
        try
        {
            await using var r = await batch.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) offsets[r.GetInt32(0)] = r.GetInt64(1);
            if (withLost && await r.NextResultAsync(ct))
            {
                while (await r.ReadAsync(ct)) lost.Add(r.GetString(0));
            }
        }
        catch (PostgresException ex) when (ForeignTables.IsMissing(ex))
        {
            // No device agent has started yet: nothing applied anywhere.
        }
        return new AppliedState(offsets, lost);
    }

    private sealed record AppliedState(Dictionary<int, long> Offsets, HashSet<string> Lost);

    /// <summary>
    /// Waits until the device has applied every message its log held when this was called; and, given
    /// <paramref name="objectId"/>, fails (<see cref="MirrorUnavailableException"/>) if the device lost writes to that
    /// object when its log was truncated under it and it has not been copied in full since. A device moves its offsets
    /// past what a truncation deleted, so "applied the whole log" alone would be true of a mirror missing acknowledged
    /// writes that no controller tracks any more (docs/design.md, "Truncation").
    /// </summary>
    public async Task WaitCaughtUpAsync(string deviceId, string? objectId, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        // librdkafka can block well past its own timeout on a partition whose leader is down: bound the wait
        // here, so a caller falls back to another mirror instead of hanging with it.
        var ends = await FreshLogEndsAsync(deviceId).WaitAsync(timeout, ct);
        while (true)
        {
            var applied = await _appliedQueries.RunAsync(deviceId, d => AppliedStateAsync(d, withLost: true, CancellationToken.None), ct);
            if (objectId is not null && applied.Lost.Contains(objectId))
                throw new MirrorUnavailableException(deviceId, $"device {deviceId} lost writes to {objectId} when its log was truncated under it, and has not been copied in full since");
            if (ends.All(kv => kv.Value == 0 || applied.Offsets.GetValueOrDefault(kv.Key) >= kv.Value)) return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"device {deviceId} did not apply its log up to {string.Join(",", ends.Values)} within {timeout.TotalSeconds:0}s");
            await Task.Delay(25, ct);
        }
    }

    /// <summary>
    /// The device's applied offsets as a query running now, or one this call starts, answers: every caller waiting for the
    /// same device shares one query, so one connection (<see cref="SingleFlight{TKey, T}"/>): an NBD client's first reads
    /// after the controller took a volume arrive by the hundred, and each polling PostgreSQL on its own took every
    /// connection the server allows ("too many clients already": those reads failed). Sharing a query that started
    /// before this call is safe: applied offsets only grow, so its answer is at most older, and a waiter then waits one
    /// more round.
    /// </summary>
    private readonly SingleFlight<string, AppliedState> _appliedQueries = new(StringComparer.Ordinal);

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, EndsQuery> _endsQueries = new(StringComparer.Ordinal);

    /// <summary>
    /// The ends of the device's log partitions, as answered by a query that started after this call: one query at
    /// a time per device, the callers that arrive while one runs sharing the next. A resync copies many ranges at
    /// once, and each asked the broker on its own, a blocking call on a pool thread apiece (32 at once on two cores).
    /// </summary>
    private Task<Dictionary<int, long>> FreshLogEndsAsync(string deviceId)
    {
        var q = _endsQueries.GetOrAdd(deviceId, _ => new EndsQuery());
        lock (q)
        {
            // A running query may have started before this call: what it answers could miss a message this caller
            // must wait for. The callers that arrive meanwhile share the next one, started once it ends.
            if (q.Running) return (q.Next ??= new TaskCompletionSource<Dictionary<int, long>>(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            q.Running = true;
            var first = new TaskCompletionSource<Dictionary<int, long>>(TaskCreationOptions.RunContinuationsAsynchronously);
            _ = RunEndsQueriesAsync(q, deviceId, first);
            return first.Task;
        }
    }

    private async Task RunEndsQueriesAsync(EndsQuery q, string deviceId, TaskCompletionSource<Dictionary<int, long>> first)
    {
        for (var current = first; current is not null;)
        {
            try
            {
                current.TrySetResult(await Task.Run(() => log.PartitionsOf(log.Channel(deviceId)).ToDictionary(p => p, p => LogEnd(deviceId, p))));
            }
            catch (Exception ex)
            {
                current.TrySetException(ex);
            }
            lock (q)
            {
                current = q.Next;
                q.Next = null;
                q.Running = current is not null;
            }
        }
    }

    private sealed class EndsQuery
    {
        public bool Running;
        public TaskCompletionSource<Dictionary<int, long>>? Next;
    }

    public void Dispose()
    {
        if (_probe.IsValueCreated) _probe.Value.Dispose();
    }
}
