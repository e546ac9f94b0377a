namespace TaggedMirror.Nbd.Protocol;

/// <summary>What an export supports, sent with its size (spec "Transmission flags").</summary>
[Flags]
public enum NbdTransmissionFlags : ushort
{
    /// <summary>No flag.</summary>
    None = 0,

    /// <summary>Must always be set.</summary>
    HasFlags = 0x0001,

    /// <summary>The export takes no writes.</summary>
    ReadOnly = 0x0002,

    /// <summary>FLUSH is understood.</summary>
    SendFlush = 0x0004,

    /// <summary>The FUA flag is understood.</summary>
    SendFua = 0x0008,

    /// <summary>Seeks are expensive.</summary>
    Rotational = 0x0010,

    /// <summary>TRIM is understood.</summary>
    SendTrim = 0x0020,

    /// <summary>WRITE_ZEROES is understood.</summary>
    SendWriteZeroes = 0x0040,

    /// <summary>The DF flag is understood (only with structured replies).</summary>
    SendDf = 0x0080,

    /// <summary>Several connections to the export see each other's writes and flushes.</summary>
    CanMultiConn = 0x0100,

    /// <summary>The FAST_ZERO flag is understood.</summary>
    SendFastZero = 0x0800,
}
