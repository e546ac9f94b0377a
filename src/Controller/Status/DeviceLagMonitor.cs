using Npgsql;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Reconciliation;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Controller.Status;

/// <summary>
/// Samples every known device's lag once a second for the <c>tm.device.lag</c> gauge, as volume status
/// computes it (<see cref="LogProgress.Lag"/>): one query for every device's offsets, cached watermarks, never
/// a blocking broker call. A stopped agent shows its lag growing here, which it could not report itself.
/// </summary>
internal sealed class DeviceLagMonitor(
    DeviceLog log, LogProgress progress, EventStreams store, ControllerTelemetry telemetry, ILogger<DeviceLagMonitor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (!telemetry.LagObserved) continue;
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
        var applied = new Dictionary<string, Dictionary<int, long>>(StringComparer.Ordinal);
        try
        {
            await using var cmd = store.DataSource.CreateCommand($"SELECT device_id, partition, next_offset FROM {store.Schema}.device_offsets");
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                if (!applied.TryGetValue(r.GetString(0), out var offsets)) applied[r.GetString(0)] = offsets = [];
                offsets[r.GetInt32(1)] = r.GetInt64(2);
            }
        }
        catch (PostgresException ex) when (ForeignTables.IsMissing(ex))
        {
            // No device agent has started yet.
        }
        var lags = new Dictionary<string, DeviceLag>(StringComparer.Ordinal);
        foreach (var channel in log.Channels)
        {
            var (end, done) = progress.Lag(channel, applied.GetValueOrDefault(channel.DeviceId) ?? []);
            lags[channel.DeviceId] = new DeviceLag(end - done, channel.UnappliedBytes);
        }
        return lags;
    }
}
