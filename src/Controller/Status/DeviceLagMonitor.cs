using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Reconciliation;
using TaggedMirror.EventStore;

namespace TaggedMirror.Controller.Status;

/// <summary>
/// Samples every known device's lag once a second for the <c>tm.device.lag</c> gauge: log end (the cached
/// watermark, never a blocking broker call) minus the applied offset PostgreSQL holds, over every partition of
/// the device's topic (a partition the device never recorded counts from offset 0). A stopped agent shows its
/// lag growing here, which it could not report itself.
/// </summary>
internal sealed class DeviceLagMonitor(
    DeviceLog log, LogProgress progress, PgEventStore store, ControllerTelemetry telemetry, ILogger<DeviceLagMonitor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                telemetry.Lags = await SampleAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                logger.LogDebug("Device lag not sampled: {Reason}", ex.Message);
            }
        }
    }

    private async Task<Dictionary<string, DeviceLag>> SampleAsync(CancellationToken ct)
    {
        var applied = new Dictionary<(string Device, int Partition), long>();
        await using (var cmd = store.DataSource.CreateCommand($"SELECT device_id, partition, next_offset FROM {store.Schema}.device_offsets"))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            while (await r.ReadAsync(ct)) applied[(r.GetString(0), r.GetInt32(1))] = r.GetInt64(2);
        }
        var lags = new Dictionary<string, DeviceLag>(StringComparer.Ordinal);
        foreach (var channel in log.Channels)
        {
            long messages = 0;
            foreach (var p in channel.Partitions ?? [0])
            {
                if (progress.CachedLogEnd(channel.DeviceId, p) is { } end)
                    messages += Math.Max(0, end - applied.GetValueOrDefault((channel.DeviceId, p)));
            }
            lags[channel.DeviceId] = new DeviceLag(messages, channel.UnappliedBytes);
        }
        return lags;
    }
}
