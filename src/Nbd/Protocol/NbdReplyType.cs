namespace TaggedMirror.Nbd.Protocol;

/// <summary>Option reply types (spec "Option reply types"); errors have bit 31 set and may carry a UTF-8 message.</summary>
public enum NbdReplyType : uint
{
    /// <summary>The option is done.</summary>
    Ack = 1,

    /// <summary>One export of a list.</summary>
    Server = 2,

    /// <summary>One piece of information about an export.</summary>
    Info = 3,

    /// <summary>One metadata context.</summary>
    MetaContext = 4,

    /// <summary>The option is not known or not supported.</summary>
    ErrUnsupported = 0x80000001,

    /// <summary>Forbidden by policy.</summary>
    ErrPolicy = 0x80000002,

    /// <summary>The option's data is malformed.</summary>
    ErrInvalid = 0x80000003,

    /// <summary>Not supported on this platform.</summary>
    ErrPlatform = 0x80000004,

    /// <summary>TLS is required first.</summary>
    ErrTlsRequired = 0x80000005,

    /// <summary>No such export.</summary>
    ErrUnknown = 0x80000006,

    /// <summary>The server is shutting down.</summary>
    ErrShutdown = 0x80000007,

    /// <summary>The client must ask for block sizes.</summary>
    ErrBlockSizeRequired = 0x80000008,

    /// <summary>The request is too big.</summary>
    ErrTooBig = 0x80000009,
}
