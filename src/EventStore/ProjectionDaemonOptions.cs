namespace TaggedMirror.EventStore;

/// <summary>Tuning for a <see cref="ProjectionDaemon"/>.</summary>
public sealed class ProjectionDaemonOptions
{
    /// <summary>Delay between polls when there is nothing to do.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Most events handed to the projection in one transaction.</summary>
    public int BatchSize { get; init; } = 500;

    /// <summary>First retry delay after an error; doubles up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan MinRetryDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest retry delay after repeated errors.</summary>
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(5);
}
