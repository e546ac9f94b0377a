using System.Text;
using Confluent.Kafka;
using TaggedMirror.Contracts.Intake;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Hosting.Kafka;

namespace TaggedMirror.Controller.Intake;

/// <summary>Publishes outcomes to the outcomes topic, keyed by the producer (idempotent producer, acks=all).</summary>
internal sealed class OutcomePublisher(DeviceLog log, ControllerOptions options) : IDisposable
{
    private readonly Lazy<IProducer<byte[]?, byte[]?>> _producer = new(() =>
        new ProducerBuilder<byte[]?, byte[]?>(KafkaSettings.Producer(log.Bootstrap, $"tm-controller-{options.Id}-intake", options.DeliveryTimeout)).Build());

    public IProducer<byte[]?, byte[]?> Producer => _producer.Value;

    /// <summary>Completes when the outcomes topic holds the outcome.</summary>
    public Task PublishAsync(IntakeOutcome outcome, CancellationToken ct) =>
        _producer.Value.ProduceAsync(options.Intake.OutcomesTopic, new Message<byte[]?, byte[]?>
        {
            Key = Encoding.UTF8.GetBytes(outcome.ProducerId),
            Value = IntakeCodec.EncodeOutcome(outcome),
        }, ct);

    public void Dispose()
    {
        if (!_producer.IsValueCreated) return;
        _producer.Value.Flush(TimeSpan.FromSeconds(5));
        _producer.Value.Dispose();
    }
}
