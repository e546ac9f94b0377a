namespace TaggedMirror.Nbd.Protocol;

/// <summary>Information an <see cref="NbdReplyType.Info"/> reply carries (spec "NBD_OPT_INFO and NBD_OPT_GO").</summary>
public enum NbdInfoType : ushort
{
    /// <summary>Size (u64) and transmission flags (u16); always sent.</summary>
    Export = 0,

    /// <summary>The export's canonical name.</summary>
    Name = 1,

    /// <summary>A human-readable description.</summary>
    Description = 2,

    /// <summary>Minimum, preferred and maximum payload sizes (u32 each).</summary>
    BlockSize = 3,
}
