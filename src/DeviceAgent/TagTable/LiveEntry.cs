using TaggedMirror.Contracts;

namespace TaggedMirror.DeviceAgent.TagTable;

/// <summary>An entry of the live tag table as the agent keeps it in memory, keyed by token.</summary>
internal sealed record LiveEntry(Tag Tag, string ObjectId, long FirstBlock, int BlockCount, DateTimeOffset RecordedAt)
{
    public DateTimeOffset LastAcknowledged { get; set; } = RecordedAt;
}
