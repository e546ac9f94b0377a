namespace TaggedMirror.Hosting.Events;

/// <summary>Special values for the expected version of an append. Any positive value means "the stream is at exactly this version".</summary>
public static class ExpectedVersion
{
    /// <summary>No concurrency check.</summary>
    public const long Any = -1;

    /// <summary>The stream must not exist yet.</summary>
    public const long NoStream = 0;
}
