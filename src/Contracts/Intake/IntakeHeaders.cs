namespace TaggedMirror.Contracts.Intake;

/// <summary>Kafka header keys of an intake request. The message key is the volume's name, the value the data.</summary>
public static class IntakeHeaders
{
    /// <summary>The request's envelope: UTF-8 JSON of <see cref="IntakeRequest"/>.</summary>
    public const string Request = "tm-in";

    /// <summary>
    /// The producer's API key, as presented to the HTTP API (UTF-8): the intake answers only requests whose key is
    /// live, may write the volume, and holds the producer id the request names.
    /// </summary>
    public const string Key = "tm-key";
}
