namespace TaggedMirror.Nbd.Protocol;

/// <summary>Request types in transmission (spec "Request types").</summary>
public enum NbdCommand : ushort
{
    /// <summary>Read a range.</summary>
    Read = 0,

    /// <summary>Write a range; the request carries the data.</summary>
    Write = 1,

    /// <summary>Disconnect: no reply; the server finishes what is in flight and closes.</summary>
    Disconnect = 2,

    /// <summary>Every write answered before is durable when this is answered.</summary>
    Flush = 3,

    /// <summary>A hint that the range is no longer needed.</summary>
    Trim = 4,

    /// <summary>Prefetch a range.</summary>
    Cache = 5,

    /// <summary>Write zeroes to a range; no data carried.</summary>
    WriteZeroes = 6,

    /// <summary>Describe a range's allocation (needs a selected metadata context).</summary>
    BlockStatus = 7,
}
