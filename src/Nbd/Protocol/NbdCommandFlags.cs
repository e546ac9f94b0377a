namespace TaggedMirror.Nbd.Protocol;

/// <summary>Flags of a request (spec "Command flags").</summary>
[Flags]
public enum NbdCommandFlags : ushort
{
    /// <summary>No flag.</summary>
    None = 0,

    /// <summary>Force unit access: durable before the reply.</summary>
    Fua = 0x01,

    /// <summary>WRITE_ZEROES must not punch a hole.</summary>
    NoHole = 0x02,

    /// <summary>READ: do not fragment the reply.</summary>
    DontFragment = 0x04,

    /// <summary>BLOCK_STATUS: one extent only.</summary>
    RequestOne = 0x08,

    /// <summary>WRITE_ZEROES: fail rather than be slow.</summary>
    FastZero = 0x10,
}
