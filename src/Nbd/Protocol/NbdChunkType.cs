namespace TaggedMirror.Nbd.Protocol;

/// <summary>Structured reply chunk types (spec "Structured reply types"); bit 15 marks an error.</summary>
public enum NbdChunkType : ushort
{
    /// <summary>No payload; only as the last chunk.</summary>
    None = 0,

    /// <summary>u64 offset, then data.</summary>
    OffsetData = 1,

    /// <summary>u64 offset, u32 length of a hole that reads as zeroes.</summary>
    OffsetHole = 2,

    /// <summary>u32 context id, then (u32 length, u32 status) extents.</summary>
    BlockStatus = 5,

    /// <summary>u32 error, u16 message length, message.</summary>
    Error = 0x8001,

    /// <summary>As <see cref="Error"/>, then the u64 offset it concerns.</summary>
    ErrorOffset = 0x8002,
}
