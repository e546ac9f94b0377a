namespace TaggedMirror.EventStore;

/// <summary>An event as stored.</summary>
/// <param name="Sequence">Global sequence number, unique and increasing in insert order (not commit order; gaps are possible).</param>
/// <param name="StreamId">The stream the event belongs to.</param>
/// <param name="Version">Position within the stream, 1-based and contiguous.</param>
/// <param name="Type">Event type name.</param>
/// <param name="Data">UTF-8 JSON as PostgreSQL normalises <c>jsonb</c> (key order and whitespace may differ from what was appended).</param>
/// <param name="Timestamp">Start time of the appending transaction.</param>
public sealed record StoredEvent(long Sequence, string StreamId, long Version, string Type, byte[] Data, DateTimeOffset Timestamp);
