using Confluent.Kafka;

namespace TaggedMirror.Controller.Intake;

/// <summary>
/// One message of the requests topic as a volume's intake gets it, or (<paramref name="AdvanceOnly"/>) word that
/// every message of that partition below <paramref name="Offset"/> has been handed over already: its position may
/// move there.
/// </summary>
internal sealed record IntakeMessage(int Partition, long Offset, byte[]? Key, byte[]? Envelope, byte[]? Value, Headers? Headers, bool AdvanceOnly = false)
{
    public static IntakeMessage Advance(int partition, long nextOffset) => new(partition, nextOffset, null, null, null, null, AdvanceOnly: true);
}
