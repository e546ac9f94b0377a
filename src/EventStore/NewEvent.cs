namespace TaggedMirror.EventStore;

/// <summary>An event to append. <paramref name="Data"/> is UTF-8 JSON; it is stored as <c>jsonb</c>.</summary>
/// <param name="Type">Event type name, stored verbatim.</param>
/// <param name="Data">UTF-8 JSON payload.</param>
public sealed record NewEvent(string Type, byte[] Data);
