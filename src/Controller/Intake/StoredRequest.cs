using TaggedMirror.Contracts.Intake;

namespace TaggedMirror.Controller.Intake;

/// <summary>A request id as <c>intake_requests</c> has it: pending (its write may or may not be in the logs) or answered.</summary>
internal sealed record StoredRequest(string Volume, bool Answered, IntakeOutcome? Outcome, int Partition, long Offset)
{
    /// <summary>True when <paramref name="partition"/>/<paramref name="offset"/> is the message that first carried the request.</summary>
    public bool IsFirstMessage(int partition, long offset) => Partition == partition && Offset == offset;
}

/// <summary>A request refused as it came (a row of <c>intake_quarantine</c>).</summary>
internal sealed record QuarantinedRequest(
    int Partition, long Offset, string? Volume, string? ProducerId, string? RequestId, string Reason, byte[]? Key, byte[]? Envelope, byte[]? Value);

/// <summary>A copy of an intake write a device recorded (its <c>tag_recorded</c> event carries the request).</summary>
internal sealed record RecordedCopy(string DeviceId, string Tag, long FirstBlock, int Blocks);
