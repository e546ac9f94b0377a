namespace TaggedMirror.IntakeClient;

/// <summary>
/// No outcome came for a request in time. Its fate is unknown (it may be written, or still queued behind others):
/// publish it again with the same request id (<see cref="IntakeProducer.PublishWithRetryAsync"/>) to learn it; it is
/// never written twice.
/// </summary>
public sealed class IntakeTimeoutException(string message) : TimeoutException(message);
