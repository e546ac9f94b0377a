namespace TaggedMirror.Contracts.Api;

/// <summary>
/// Body of <c>POST /volumes/{name}/mirrors</c> (attach a mirror on <paramref name="Device"/>) and of
/// <c>POST /volumes/{name}/mirrors/{old}/replace</c> (replace the mirror on <c>old</c> by one on <paramref name="Device"/>).
/// </summary>
public sealed record MirrorRequest(string? Device);

/// <summary>Body of <c>POST /volumes/{name}/grow</c>: the volume's new size in blocks.</summary>
public sealed record GrowRequest(long? Blocks);

/// <summary>
/// What became of a storage object a change left behind (a detached mirror's, a deleted volume's):
/// <paramref name="Outcome"/> is <c>removed</c> (the device applied the removal), a sentence saying the removal is in
/// the device's log and will be applied when the device reaches it, or <c>not removed: </c> and why.
/// </summary>
public sealed record ObjectRemoval(string Device, string ObjectId, string Outcome);

/// <summary>What <c>DELETE /volumes/{name}/mirrors/{device}</c> answers: the volume now, and the detached mirror's object.</summary>
public sealed record DetachResult(VolumeStatus Volume, ObjectRemoval Removal);

/// <summary>What <c>DELETE /volumes/{name}</c> answers: each mirror's object.</summary>
public sealed record DeleteResult(string Volume, ObjectRemoval[] Objects);
