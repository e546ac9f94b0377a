namespace TaggedMirror.Contracts.Api;

/// <summary>
/// Who last wrote a block of a volume (<c>GET /volumes/{name}/blocks/{block}/writer</c>, <c>tm who-wrote</c>): the
/// newest write to it that any mirror applied, and what each mirror holds there. Answered from the devices'
/// block-writer tables (docs/design.md, "Who wrote a block").
/// </summary>
/// <param name="Volume">The volume.</param>
/// <param name="Block">The block asked about.</param>
/// <param name="LastWrite">The newest write (not a repair) any mirror applied to the block; null when none is recorded.</param>
/// <param name="Mirrors">Each mirror's newest entry for the block, in the volume's mirror order.</param>
public sealed record BlockWriters(string Volume, long Block, BlockWrite? LastWrite, MirrorBlockWrite[] Mirrors);

/// <summary>One write as a device recorded it.</summary>
/// <param name="Tag">The write's tag.</param>
/// <param name="Kind"><c>write</c>, <c>append</c>, <c>zero</c> (a trim or a zeroing) or <c>repair</c> (a resync or full copy's).</param>
/// <param name="Principal">Who asked for it (<c>key:…</c>, <c>nbd:…</c>); null for a repair or when unknown.</param>
/// <param name="FirstBlock">First block the write covered.</param>
/// <param name="BlockCount">Blocks it covered.</param>
/// <param name="OwnerEpoch">The owner epoch it was written under.</param>
/// <param name="AppliedAt">When the device recorded it (the earliest of the mirrors that applied it, for <see cref="BlockWriters.LastWrite"/>).</param>
/// <param name="AppliedBy">Devices that applied this very write (filled for <see cref="BlockWriters.LastWrite"/>).</param>
public sealed record BlockWrite(
    string Tag, string Kind, string? Principal, long FirstBlock, int BlockCount, long OwnerEpoch, DateTimeOffset AppliedAt, string[] AppliedBy);

/// <summary>A mirror's newest entry for the block.</summary>
/// <param name="Device">The mirror's device.</param>
/// <param name="State">The mirror's state.</param>
/// <param name="Holds">
/// <c>last-write</c> (it applied <see cref="BlockWriters.LastWrite"/>), <c>copy</c> (a repair newer than the last
/// write brought the block here), <c>older</c> (its newest entry is older than the last write: it missed it, or a
/// resync is due), <c>none</c> (nothing recorded for the block).
/// </param>
/// <param name="Write">Its newest entry for the block; null when none.</param>
public sealed record MirrorBlockWrite(string Device, string State, string Holds, BlockWrite? Write);
