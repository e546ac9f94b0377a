namespace TaggedMirror.Nbd.Server;

/// <summary>Whether the server offers TLS (<c>NBD_OPT_STARTTLS</c>), as in nbd-server's and qemu-nbd's <c>tls</c> modes.</summary>
public enum NbdTlsMode
{
    /// <summary>TLS when the server has a certificate (<see cref="Allow"/>), none otherwise (<see cref="Off"/>).</summary>
    Auto,

    /// <summary>No TLS: <c>NBD_OPT_STARTTLS</c> is answered "unsupported".</summary>
    Off,

    /// <summary>Clients may upgrade with <c>NBD_OPT_STARTTLS</c>, or not.</summary>
    Allow,

    /// <summary>Nothing but <c>NBD_OPT_STARTTLS</c> and <c>NBD_OPT_ABORT</c> before TLS: every other option gets <c>NBD_REP_ERR_TLS_REQD</c>.</summary>
    Require,
}
