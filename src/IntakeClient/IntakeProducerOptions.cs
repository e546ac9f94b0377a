using TaggedMirror.Contracts.Intake;

namespace TaggedMirror.IntakeClient;

/// <summary>Settings of an <see cref="IntakeProducer"/>.</summary>
public sealed class IntakeProducerOptions
{
    /// <summary>Kafka bootstrap servers.</summary>
    public required string BootstrapServers { get; init; }

    /// <summary>This producer's id (<see cref="IntakeCodec.IsValidId"/>): outcomes are keyed by it. Request ids are unique per producer.</summary>
    public required string ProducerId { get; init; }

    /// <summary>
    /// The API key the requests carry (a producer key naming the volumes written, or an operator's). The first key to
    /// use a producer id holds it until that key is revoked: requests under another key's producer id go unanswered.
    /// </summary>
    public required string Key { get; init; }

    /// <summary>The requests topic.</summary>
    public string RequestsTopic { get; init; } = IntakeTopics.Requests;

    /// <summary>The outcomes topic.</summary>
    public string OutcomesTopic { get; init; } = IntakeTopics.Outcomes;

    /// <summary>How long <see cref="IntakeProducer.PublishAsync"/> waits for an outcome.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
}
