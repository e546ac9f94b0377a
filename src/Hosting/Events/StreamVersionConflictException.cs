using System.Globalization;

namespace TaggedMirror.Hosting.Events;

/// <summary>An append's expected version did not match the stream's current version. Nothing of that append was written.</summary>
public sealed class StreamVersionConflictException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="streamId">The stream appended to.</param>
    /// <param name="expectedVersion">The version the caller expected (see <see cref="TaggedMirror.Hosting.Events.ExpectedVersion"/>).</param>
    /// <param name="actualVersion">The stream's version as observed, 0 when it does not exist, -1 when it could not be read.</param>
    /// <param name="innerException">The database error that revealed the conflict, if any.</param>
    public StreamVersionConflictException(string streamId, long expectedVersion, long actualVersion, Exception? innerException = null)
        : base(FormatMessage(streamId, expectedVersion, actualVersion), innerException)
    {
        StreamId = streamId;
        ExpectedVersion = expectedVersion;
        ActualVersion = actualVersion;
    }

    /// <summary>The stream appended to.</summary>
    public string StreamId { get; }

    /// <summary>The version the caller expected.</summary>
    public long ExpectedVersion { get; }

    /// <summary>The stream's version as observed (0: no stream; -1: unknown).</summary>
    public long ActualVersion { get; }

    private static string FormatMessage(string streamId, long expected, long actual)
    {
        var expectedText = expected switch
        {
            TaggedMirror.Hosting.Events.ExpectedVersion.NoStream => "no stream",
            TaggedMirror.Hosting.Events.ExpectedVersion.Any => "any version",
            _ => "version " + expected.ToString(CultureInfo.InvariantCulture),
        };
        var actualText = actual switch
        {
            0 => "it does not exist",
            < 0 => "its current version could not be read",
            _ => "it is at version " + actual.ToString(CultureInfo.InvariantCulture),
        };
        return $"Stream '{streamId}': expected {expectedText}, but {actualText}.";
    }
}
