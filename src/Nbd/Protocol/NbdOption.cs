namespace TaggedMirror.Nbd.Protocol;

/// <summary>Options a client sends during the handshake (spec "Option types").</summary>
public enum NbdOption : uint
{
    /// <summary>Choose an export and enter transmission; no reply header (the old way).</summary>
    ExportName = 1,

    /// <summary>End the handshake.</summary>
    Abort = 2,

    /// <summary>List the exports.</summary>
    List = 3,

    /// <summary>Withdrawn.</summary>
    PeekExport = 4,

    /// <summary>Upgrade to TLS.</summary>
    StartTls = 5,

    /// <summary>Describe an export, stay in the handshake.</summary>
    Info = 6,

    /// <summary>Describe an export and enter transmission.</summary>
    Go = 7,

    /// <summary>Use structured replies in transmission.</summary>
    StructuredReply = 8,

    /// <summary>List metadata contexts.</summary>
    ListMetaContext = 9,

    /// <summary>Select metadata contexts (for block status).</summary>
    SetMetaContext = 10,

    /// <summary>64-bit headers (an extension).</summary>
    ExtendedHeaders = 11,
}
