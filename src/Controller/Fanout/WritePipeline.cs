using System.Collections.Concurrent;
using Confluent.Kafka;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Controller.Tagging;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller.Fanout;

/// <summary>
/// Flow 1: tag a write, make one transaction per mirror (M1), put each on its device's topic, and answer
/// when the log holds every copy (or when every device applied it, if asked). A copy that cannot be delivered
/// degrades its mirror; the write succeeds while the volume's minimum number of mirrors hold it.
/// </summary>
internal sealed class WritePipeline(
    DeviceLog log,
    TagGenerator tags,
    VolumeCatalog catalog,
    ControllerOptions options,
    ILogger<WritePipeline> logger)
{
    private readonly ConcurrentDictionary<long, InflightWrite> _inflight = new();
    private readonly SortedSet<long> _undelivered = [];
    private readonly Lock _deliveryLock = new();

    /// <summary>Every write with a sequence up to this has been delivered or has failed (the barrier's <c>upToSeq</c>).</summary>
    public long DeliveredUpTo
    {
        get
        {
            lock (_deliveryLock)
                return _undelivered.Count == 0 ? tags.Issued : _undelivered.Min - 1;
        }
    }

    public int InflightCount => _inflight.Count;

    public async Task<WriteResult> WriteAsync(Volume v, TransactionKind kind, long firstBlock, byte[] data, bool waitApplied, CancellationToken ct)
    {
        var blocks = data.Length / v.BlockSize;
        if (kind == TransactionKind.Append)
            firstBlock = await catalog.ReserveExtensionAsync(v, blocks, ct);
        // Flow control before the tag is taken: a lagging device holds writes back, but not forever.
        foreach (var m in v.Mirrors)
        {
            if (!m.ReceivesWrites) continue;
            var channel = log.Channel(m.DeviceId);
            if (!await channel.WaitForRoomAsync(data.Length, options.LagTimeout, ct))
            {
                await DegradeAsync(v, m, $"device lagged more than {options.MaxLagBytes} bytes behind for {options.LagTimeout.TotalSeconds:0.#}s");
            }
        }

        var sends = new (int Mirror, Task<DeliveryResult<byte[]?, byte[]?>>? Delivery, long[]? Tokens)[v.Mirrors.Length];
        var write = Enqueue(v, kind, firstBlock, blocks, data, sends);

        var holding = 0;
        foreach (var (i, delivery, tokens) in sends)
        {
            if (delivery is null) continue;
            var m = v.Mirrors[i];
            try
            {
                await delivery;
                holding++;
            }
            catch (ProduceException<byte[]?, byte[]?> ex)
            {
                var channel = log.Channel(m.DeviceId);
                // The device never saw these tokens: they ride on a later transaction. Retiring twice is harmless.
                if (tokens is not null) foreach (var t in tokens) channel.EnqueueToken(t);
                channel.OnSettled(data.Length);
                if (write.MarkFailed(i)) Settle(write);
                await DegradeAsync(v, m, $"copy of {write.Tag} could not be delivered to {channel.Topic}: {ex.Error.Reason}");
            }
        }
        lock (_deliveryLock) _undelivered.Remove(write.Tag.Seq);
        Interlocked.Increment(ref v.WritesAccepted);
        Interlocked.Add(ref v.BytesAccepted, data.Length);

        if (holding < v.MinMirrors)
            throw new WriteFailedException($"write {write.Tag} reached {holding} of {v.Mirrors.Length} mirrors; volume {v.Name} needs {v.MinMirrors}");
        var applied = false;
        if (waitApplied)
        {
            try
            {
                await write.AllApplied.Task.WaitAsync(options.AppliedWaitTimeout, ct);
                applied = true;
            }
            catch (TimeoutException)
            {
                logger.LogWarning("Write {Tag}: not applied on every mirror within {Timeout}", write.Tag, options.AppliedWaitTimeout);
            }
        }
        return new WriteResult(write.Tag.ToString(), write.FirstBlock, blocks, holding, v.Mirrors.Length, applied);
    }

    /// <summary>
    /// Takes the tag and enqueues every copy under the volume's lock, so each mirror's log gets this volume's
    /// writes in tag order. Nothing here waits on the network.
    /// </summary>
    private InflightWrite Enqueue(
        Volume v, TransactionKind kind, long firstBlock, int blocks, byte[] data,
        (int Mirror, Task<DeliveryResult<byte[]?, byte[]?>>? Delivery, long[]? Tokens)[] sends)
    {
        Span<long> tokenBuffer = stackalloc long[TransactionCodec.MaxTokensPerTransaction];
        lock (v.WriteLock)
        {
            var tag = tags.Next();
            var write = new InflightWrite(tag, v, firstBlock, blocks, data.Length);
            _inflight[tag.Seq] = write;
            v.Inflight[tag.Seq] = write;
            lock (_deliveryLock) _undelivered.Add(tag.Seq);
            var fields = new TransactionHeader(kind, tag, firstBlock, blocks, v.BlockSize, v.Blocks);
            foreach (var m in v.Mirrors)
            {
                if (!m.ReceivesWrites)
                {
                    write.MarkSkipped(m.Index);
                    sends[m.Index] = (m.Index, null, null);
                    continue;
                }
                var channel = log.Channel(m.DeviceId);
                var n = channel.TakeTokens(tokenBuffer);
                write.MarkSent(m.Index);
                var delivery = log.SendAsync(channel, m.ObjectIdUtf8, fields, m.ObjectIdUtf8, tokenBuffer[..n], data);
                sends[m.Index] = (m.Index, delivery, n == 0 ? null : tokenBuffer[..n].ToArray());
                channel.OnSent(data.Length);
            }
            return write;
        }
    }

    public async Task DegradeAsync(Volume v, Mirror m, string reason)
    {
        await catalog.SetMirrorStateAsync(v, m, MirrorState.Degraded, reason, CancellationToken.None);
        OnMirrorLost(v, m);
    }

    /// <summary>A device recorded an entry for one of our writes (flow 3).</summary>
    public void OnApplied(string deviceId, Tag tag, long token)
    {
        if (tag.ControllerId != tags.ControllerId || tag.Epoch != tags.Epoch) return; // an earlier epoch: reconciliation's business
        if (!_inflight.TryGetValue(tag.Seq, out var write)) return;                   // already settled: a repeated acknowledgement
        var m = write.Volume.MirrorOn(deviceId);
        if (m is null) return;
        var settled = write.MarkApplied(m.Index, token);
        log.Channel(deviceId).OnSettled(write.Bytes);
        if (settled) Settle(write);
    }

    private void Settle(InflightWrite write)
    {
        if (!_inflight.TryRemove(write.Tag.Seq, out _)) return;
        write.Volume.Inflight.TryRemove(write.Tag.Seq, out _);
        if (write.ReachedEveryMirror)
        {
            foreach (var m in write.Volume.Mirrors)
                log.Channel(m.DeviceId).EnqueueToken(write.TokenOf(m.Index));
        }
        write.AllApplied.TrySetResult();
    }

    /// <summary>A mirror stopped receiving writes: writes waiting for it are settled without it.</summary>
    public void OnMirrorLost(Volume v, Mirror m)
    {
        foreach (var w in v.Inflight.Values)
        {
            if (w.MarkFailed(m.Index))
                Settle(w);
        }
    }

    /// <summary>Writes sent to <paramref name="m"/> that it has not applied yet.</summary>
    public IEnumerable<Task> Unapplied(Volume v, Mirror m) =>
        v.Inflight.Values.Select(w => w.AppliedOnAsync(m.Index)).Where(t => !t.IsCompleted);
}
