namespace TaggedMirror.Contracts.Intake;

/// <summary>
/// The Kafka topics of the write intake: producers publish <see cref="IntakeRequest"/>s to <see cref="Requests"/>
/// (key = the volume's name, so one volume's requests stay in one partition, in order) and read their
/// <see cref="IntakeOutcome"/>s from <see cref="Outcomes"/> (key = the producer's id).
/// </summary>
public static class IntakeTopics
{
    /// <summary>Write requests, key = volume name, value = the data, the rest in the <see cref="IntakeHeaders.Request"/> header.</summary>
    public const string Requests = "tm.intake";

    /// <summary>One outcome per request (JSON), key = producer id.</summary>
    public const string Outcomes = "tm.intake.outcomes";

    /// <summary>Partitions a controller gives either topic when it has to create it.</summary>
    public const int DefaultPartitions = 4;
}
