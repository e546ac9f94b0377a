using System.Collections.Concurrent;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller.Verify;

/// <summary>
/// Scheduled verifies (<see cref="ControllerOptions.VerifyInterval"/>): each volume this controller owns is verified,
/// with repair, once its newest verify ended that long ago (or this process started that long ago). A volume whose
/// verify is running, started by an operator or a rebuild, is left to it. Off by default.
/// </summary>
internal sealed class VerifySchedule(VolumeCatalog catalog, VerifyService verify, ControllerOptions options, ILogger<VerifySchedule> logger) : BackgroundService
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> _firstSeen = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.VerifyInterval <= TimeSpan.Zero) return;
        logger.LogInformation("Every volume is verified every {Interval}", options.VerifyInterval);
        var tick = TimeSpan.FromTicks(Math.Clamp(options.VerifyInterval.Ticks / 10, TimeSpan.TicksPerSecond / 4, TimeSpan.TicksPerMinute));
        using var timer = new PeriodicTimer(tick);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var now = DateTimeOffset.UtcNow;
            foreach (var v in catalog.All.Where(v => v.Owned))
            {
                var latest = verify.Latest(v.Name);
                if (latest is { State: "running" }) continue;
                var since = latest?.FinishedAt ?? _firstSeen.GetOrAdd(v.Name, now);
                if (now - since < options.VerifyInterval) continue;
                if (verify.Start(v, repair: true, VerifyService.DefaultRangeBlocks, options.VerifyMaxBytesPerSecond) is { } started)
                    logger.LogInformation("Volume {Volume}: scheduled verify {Id}", v.Name, started.Id);
            }
        }
    }
}
