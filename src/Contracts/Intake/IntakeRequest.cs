namespace TaggedMirror.Contracts.Intake;

/// <summary>
/// What a producer says about one write it publishes to <see cref="IntakeTopics.Requests"/>, carried in the
/// <see cref="IntakeHeaders.Request"/> header; the volume is the message's key and the data its value, as on the
/// device topics (the data is never copied into JSON).
/// </summary>
/// <param name="Version">Format version; <see cref="IntakeCodec.Version"/>.</param>
/// <param name="ProducerId">The producer: its outcomes are published keyed by it (<see cref="IntakeCodec.IsValidId"/>).</param>
/// <param name="RequestId">Unique per producer: a request id seen before is answered with its first outcome, never written twice.</param>
/// <param name="FirstBlock">First block written.</param>
/// <param name="DataCrc32C">CRC32C of the data, checked before anything is written.</param>
public sealed record IntakeRequest(int Version, string ProducerId, string RequestId, long FirstBlock, uint DataCrc32C);
