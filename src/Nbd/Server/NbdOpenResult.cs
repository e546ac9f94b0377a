using TaggedMirror.Nbd.Protocol;

namespace TaggedMirror.Nbd.Server;

/// <summary>An export opened, or the option error and sentence a client gets instead.</summary>
public sealed record NbdOpenResult(INbdExport? Export, NbdReplyType Error, string Message)
{
    /// <summary>Opened.</summary>
    public static NbdOpenResult Opened(INbdExport export) => new(export ?? throw new ArgumentNullException(nameof(export)), NbdReplyType.Ack, "");

    /// <summary>No such export (<c>NBD_REP_ERR_UNKNOWN</c>).</summary>
    public static NbdOpenResult Unknown(string message) => new(null, NbdReplyType.ErrUnknown, message);

    /// <summary>It exists but is not served here now (<c>NBD_REP_ERR_POLICY</c>).</summary>
    public static NbdOpenResult Refused(string message) => new(null, NbdReplyType.ErrPolicy, message);
}
