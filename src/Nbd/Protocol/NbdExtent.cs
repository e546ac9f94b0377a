namespace TaggedMirror.Nbd.Protocol;

/// <summary>Status flags of the <c>base:allocation</c> context, per extent.</summary>
[Flags]
public enum NbdAllocation : uint
{
    /// <summary>Allocated, contents unknown: what a server may always say.</summary>
    Data = 0,

    /// <summary><c>NBD_STATE_HOLE</c>: no storage behind it (a write there may need space).</summary>
    Hole = 1,

    /// <summary><c>NBD_STATE_ZERO</c>: it reads as zeroes.</summary>
    Zero = 2,
}

/// <summary>One descriptor of a <c>BLOCK_STATUS</c> reply: <paramref name="Length"/> bytes (nonzero) with one status.</summary>
public readonly record struct NbdExtent(uint Length, NbdAllocation Status);
