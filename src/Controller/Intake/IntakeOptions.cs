using TaggedMirror.Contracts.Intake;

namespace TaggedMirror.Controller.Intake;

/// <summary>The write intake (<c>Controller__Intake__…</c>): producers that publish writes to Kafka. See docs/design.md, "Producers that publish writes".</summary>
public sealed class IntakeOptions
{
    /// <summary>Consume the intake topic and answer on the outcomes topic.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The requests topic (key = volume).</summary>
    public string RequestsTopic { get; set; } = IntakeTopics.Requests;

    /// <summary>The outcomes topic (key = producer id).</summary>
    public string OutcomesTopic { get; set; } = IntakeTopics.Outcomes;

    /// <summary>Partitions of either topic when this controller has to create it.</summary>
    public int Partitions { get; set; } = IntakeTopics.DefaultPartitions;

    /// <summary>
    /// Most requests of one volume handled per step: their request ids are recorded as pending in one PostgreSQL
    /// transaction, and their outcomes with the volume's position in another.
    /// </summary>
    public int BatchSize { get; set; } = 64;

    /// <summary>Most requests of one volume read ahead of its work; past it the volume's later requests are read again from the log when it catches up.</summary>
    public int QueueLimit { get; set; } = 1024;

    /// <summary>
    /// How long a request whose fate is unknown (recorded pending, no outcome) waits for each mirror to apply its
    /// whole log before the attempt is given up and tried again (that volume's intake waits meanwhile).
    /// </summary>
    public TimeSpan RecoveryWait { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Pause before a volume's intake tries again after it could not go on (a mirror not caught up, PostgreSQL or Kafka away).</summary>
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromSeconds(1);

    public void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(RequestsTopic);
        ArgumentException.ThrowIfNullOrWhiteSpace(OutcomesTopic);
        ArgumentOutOfRangeException.ThrowIfLessThan(Partitions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(BatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(QueueLimit, BatchSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(RecoveryWait, TimeSpan.FromSeconds(1));
        ArgumentOutOfRangeException.ThrowIfLessThan(RetryInterval, TimeSpan.FromMilliseconds(10));
    }
}
