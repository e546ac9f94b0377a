namespace TaggedMirror.Nbd.Protocol;

/// <summary>Error values of replies (spec "Error values"); clients take an unknown value as <see cref="InvalidArgument"/>.</summary>
public enum NbdError : uint
{
    /// <summary>Success.</summary>
    None = 0,

    /// <summary>Operation not permitted (a write to a read-only export).</summary>
    NotPermitted = 1,

    /// <summary>Input/output error.</summary>
    Io = 5,

    /// <summary>Out of memory.</summary>
    NoMemory = 12,

    /// <summary>Invalid argument: misaligned, out of range, unknown command or flag.</summary>
    InvalidArgument = 22,

    /// <summary>No space left (a write past the end).</summary>
    NoSpace = 28,

    /// <summary>Too large for one reply.</summary>
    Overflow = 75,

    /// <summary>Not supported (FAST_ZERO only).</summary>
    NotSupported = 95,

    /// <summary>The server is shutting down.</summary>
    Shutdown = 108,
}
