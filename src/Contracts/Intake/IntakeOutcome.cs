namespace TaggedMirror.Contracts.Intake;

/// <summary>
/// The answer to one intake request, published to <see cref="IntakeTopics.Outcomes"/> keyed by the producer. Every
/// outcome published for the same request id is this same record (a duplicate gets the first one again).
/// </summary>
/// <param name="ProducerId">The producer.</param>
/// <param name="RequestId">The request answered.</param>
/// <param name="Volume">The volume it was for.</param>
/// <param name="Ok">True when the write is in the logs of at least the volume's minimum number of mirrors (an HTTP write's 200).</param>
/// <param name="Tag">The write's tag, when it was tagged (also on a refusal after tagging: too few mirrors took it).</param>
/// <param name="FirstBlock">First block written.</param>
/// <param name="Blocks">Blocks written (0 when refused before that was known).</param>
/// <param name="MirrorsHolding">Mirrors whose logs hold it.</param>
/// <param name="Mirrors">The volume's mirrors.</param>
/// <param name="Refusal">Why it was refused, a sentence; null when <paramref name="Ok"/>.</param>
public sealed record IntakeOutcome(
    string ProducerId,
    string RequestId,
    string Volume,
    bool Ok,
    string? Tag,
    long FirstBlock,
    int Blocks,
    int MirrorsHolding,
    int Mirrors,
    string? Refusal)
{
    /// <summary>A refusal before anything was written.</summary>
    public static IntakeOutcome Refused(string producerId, string requestId, string volume, long firstBlock, string reason) =>
        new(producerId, requestId, volume, false, null, firstBlock, 0, 0, 0, reason);
}
