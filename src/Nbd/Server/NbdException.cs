using TaggedMirror.Nbd.Protocol;

namespace TaggedMirror.Nbd.Server;

/// <summary>A request an export could not carry out: <see cref="Error"/> goes to the client, with the message when replies are structured.</summary>
public sealed class NbdException : Exception
{
    public NbdException(NbdError error, string message)
        : base(message) => Error = error;

    public NbdException()
        : this(NbdError.Io, "I/O error")
    {
    }

    public NbdException(string message)
        : this(NbdError.Io, message)
    {
    }

    public NbdException(string message, Exception innerException)
        : base(message, innerException) => Error = NbdError.Io;

    /// <summary>The error the client gets.</summary>
    public NbdError Error { get; }
}
