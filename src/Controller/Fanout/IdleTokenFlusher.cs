using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Controller.Tagging;

namespace TaggedMirror.Controller.Fanout;

/// <summary>
/// Tokens normally ride on the next write to a device. When a device has had no write for a while, a barrier
/// carries them instead (flow 3), so tag tables drain on an idle volume too.
/// </summary>
internal sealed class IdleTokenFlusher(DeviceLog log, WritePipeline pipeline, TagGenerator tags, ControllerOptions options, ILogger<IdleTokenFlusher> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.IdleTokenFlush);
        var tokens = new long[TransactionCodec.MaxTokensPerTransaction];
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            foreach (var channel in log.Channels)
            {
                if (channel.PendingTokens == 0 || channel.SinceLastSend < options.IdleTokenFlush) continue;
                var n = channel.TakeTokens(tokens);
                if (n == 0) continue;
                var fields = new TransactionHeader(
                    TransactionKind.Barrier, DeviceLog.BarrierTag(tags.ControllerId, tags.Epoch, pipeline.DeliveredUpTo), 0, 0, 0, 0);
                channel.OnTokensOnlySent();
                try
                {
                    await log.SendAsync(channel, DeviceLog.BarrierKey, fields, [], tokens.AsSpan(0, n), []);
                }
                catch (Confluent.Kafka.ProduceException<byte[]?, byte[]?> ex)
                {
                    for (var i = 0; i < n; i++) channel.EnqueueToken(tokens[i]);
                    logger.LogWarning("Barrier with {Count} tokens to {Topic} not delivered: {Reason}", n, channel.Topic, ex.Error.Reason);
                }
            }
        }
    }
}
