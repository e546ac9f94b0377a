namespace TaggedMirror.Nbd.Server;

/// <summary>The client broke the protocol in a way the server cannot answer in frame: the connection is closed and the reason logged.</summary>
public sealed class NbdProtocolException : Exception
{
    public NbdProtocolException()
    {
    }

    public NbdProtocolException(string message)
        : base(message)
    {
    }

    public NbdProtocolException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
