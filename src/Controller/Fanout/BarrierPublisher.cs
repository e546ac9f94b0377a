using System.Diagnostics;
using Confluent.Kafka;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Controller.Tagging;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting.Kafka;

namespace TaggedMirror.Controller.Fanout;

/// <summary>
/// Flow 4. Puts <c>Barrier(controller, epoch, upToSeq)</c> on every partition of every mirror's topic, where
/// every write up to <c>upToSeq</c> has been delivered or has failed. A device that passes it and has no entry
/// for such a write will never get it: that is what lets reconciliation ask for a resync. The first barrier of
/// an epoch (upToSeq 0) also closes every earlier epoch of this controller, since none of their writes can
/// follow it in the log. Barriers carry waiting tokens, so tag tables drain on idle volumes (flow 3), and a
/// barrier that reaches a degraded mirror's log brings the mirror back to receive writes while it is resynced.
/// <para>
/// It also puts this owner's fence in every mirror's log of each volume it took (and again until each log has
/// it): devices then refuse the volume's writes from older owners, and reconciliation knows that a previous
/// owner's write a device has not recorded by then never reaches it (docs/design.md, "One writer per volume").
/// </para>
/// </summary>
internal sealed class BarrierPublisher(
    DeviceLog log, WritePipeline pipeline, TagGenerator tags, VolumeCatalog catalog, ControllerOptions options, ILogger<BarrierPublisher> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.IdleTokenFlush);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            SendFences();
            var devices = catalog.All.Where(v => v.Owned).SelectMany(v => v.Mirrors).Select(m => m.DeviceId).Distinct(StringComparer.Ordinal);
            foreach (var device in devices)
            {
                var channel = log.Channel(device);
                if (channel.BarrierInFlight is { IsCompleted: false })
                {
                    ProbeWhileDegraded(channel);
                    continue;
                }
                var tokensWaiting = channel.Tokens.Count > 0 && channel.SinceLastSend >= options.IdleTokenFlush;
                var due = Stopwatch.GetElapsedTime(channel.LastBarrierTimestamp) >= options.BarrierInterval;
                if (!tokensWaiting && !due) continue;
                channel.LastBarrierTimestamp = Stopwatch.GetTimestamp();
                channel.BarrierInFlight = SendAsync(channel, stoppingToken);
            }
        }
    }

    /// <summary>
    /// A barrier still waiting for a device with degraded mirrors is waiting for its log to come back: the producer is
    /// asked to look for the log's broker every <see cref="LeaderProbe.Interval"/> instead of librdkafka's once a
    /// second, so the barrier goes out (and the mirrors are resynced) as soon as the log is there.
    /// </summary>
    private void ProbeWhileDegraded(DeviceChannel channel)
    {
        if (catalog.All.Any(v => v.Owned && v.MirrorOn(channel.DeviceId) is { State: MirrorState.Degraded }))
            channel.LogProbe.Poke();
    }

    private async Task SendAsync(DeviceChannel channel, CancellationToken ct)
    {
        var tokens = new long[TransactionCodec.MaxTokensPerTransaction];
        var n = channel.Tokens.Take(tokens);
        var tag = new Tag(tags.ControllerId, tags.Epoch, pipeline.DeliveredUpTo);
        channel.OnTokensOnlySent();
        try
        {
            var partitions = log.PartitionsOf(channel);
            var sends = partitions.Select((p, i) => log.SendBarrierAsync(channel, p, tag, i == 0 ? tokens.AsSpan(0, n) : default)).ToArray();
            await Task.WhenAll(sends);
            await ReviveDegradedMirrorsAsync(channel.DeviceId, ct);
        }
        catch (ProduceException<byte[]?, byte[]?> ex)
        {
            channel.Tokens.Return(tokens.AsSpan(0, n));
            logger.LogDebug("Barrier {Tag} to {Topic} not delivered: {Reason}", tag, channel.Topic, ex.Error.Reason);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            channel.Tokens.Return(tokens.AsSpan(0, n));
            logger.LogWarning(ex, "Barrier to {Topic} failed", channel.Topic);
        }
    }

    private void SendFences()
    {
        foreach (var v in catalog.All)
        {
            if (!v.Owned) continue;
            var ownerEpoch = v.OwnerEpoch;
            foreach (var m in v.Mirrors)
            {
                if (m.FencedOwnerEpoch >= ownerEpoch || m.FenceInFlight is { IsCompleted: false }) continue;
                m.FenceInFlight = FenceAsync(v, m, ownerEpoch);
            }
        }
    }

    private async Task FenceAsync(Volume v, Mirror m, long ownerEpoch)
    {
        try
        {
            await log.SendFenceAsync(log.Channel(m.DeviceId), m.ObjectIdUtf8, new Tag(tags.ControllerId, tags.Epoch, 0), v.BlockSize, v.Blocks, ownerEpoch);
            m.FencedOwnerEpoch = Math.Max(m.FencedOwnerEpoch, ownerEpoch);
            logger.LogInformation("Volume {Volume}: owner fence {OwnerEpoch} is in the log of {Device}", v.Name, ownerEpoch, m.DeviceId);
        }
        catch (Exception ex) when (ex is KafkaException or ObjectDisposedException)
        {
            logger.LogDebug("Volume {Volume}: owner fence {OwnerEpoch} to {Device} not delivered: {Reason}", v.Name, ownerEpoch, m.DeviceId, ex.Message);
        }
    }

    /// <summary>The device's log takes writes again: its degraded mirrors receive writes and are resynced.</summary>
    private async Task ReviveDegradedMirrorsAsync(string deviceId, CancellationToken ct)
    {
        foreach (var v in catalog.All)
        {
            if (v.Owned && v.MirrorOn(deviceId) is { State: MirrorState.Degraded } m)
            {
                await catalog.SetMirrorStateAsync(v, m, m.FullCopyPending ? MirrorState.NeedsFullCopy : MirrorState.Resyncing,
                    $"log of {deviceId} takes writes again; copying what it missed", ct);
            }
        }
    }
}
