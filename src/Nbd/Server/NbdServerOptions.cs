namespace TaggedMirror.Nbd.Server;

/// <summary>Limits of an NBD server; every one bounds what a client can make the server hold or do.</summary>
public sealed class NbdServerOptions
{
    /// <summary>
    /// Largest READ or WRITE payload, advertised as the maximum block size (rounded down to each export's minimum).
    /// The spec asks for at least 1 MiB (where the export is that large); a request beyond it closes the connection.
    /// </summary>
    public int MaxPayloadBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Requests one connection may have in flight; the server stops reading the socket while they are.</summary>
    public int MaxRequestsInFlight { get; set; } = 128;

    /// <summary>Payload bytes (writes received, reads being answered) one connection may hold at once.</summary>
    public long MaxBytesInFlight { get; set; } = 64L * 1024 * 1024;

    /// <summary>
    /// Connections served at once, handshakes included (nbd-server's <c>max_connections</c>); one more is closed as soon
    /// as it is accepted. Bounds the sockets and memory (<see cref="MaxBytesInFlight"/> each) clients can make the
    /// server hold, so a client connecting in a loop cannot take the host's file descriptors from everything else.
    /// </summary>
    public int MaxConnections { get; set; } = 64;

    /// <summary>Largest option data accepted in the handshake (export names are at most 4096 bytes).</summary>
    public int MaxOptionBytes { get; set; } = 64 * 1024;

    /// <summary>Options one handshake may send before the server gives up on it.</summary>
    public int MaxOptions { get; set; } = 1000;

    /// <summary>Time a client has from connecting to choosing an export.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Time requests in flight get to finish when the client disconnects or the server stops.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Whether clients may, or must, upgrade to TLS (<c>NBD_OPT_STARTTLS</c>); see <see cref="NbdTlsMode"/>.</summary>
    public NbdTlsMode Tls { get; set; } = NbdTlsMode.Auto;

    /// <summary>The server's TLS certificate with its private key; set by the host (not from configuration).</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2? Certificate { get; set; }

    /// <summary>
    /// When set, a client that upgrades to TLS must present a certificate chained to one of these; the export sees it
    /// (<see cref="NbdClient.Certificate"/>) and decides what it may do. Set by the host (not from configuration).
    /// </summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2Collection? ClientCertificateAuthorities { get; set; }

    /// <summary>The TLS mode in effect: <see cref="NbdTlsMode.Auto"/> resolved by whether there is a certificate.</summary>
    public NbdTlsMode EffectiveTls => Tls == NbdTlsMode.Auto ? (Certificate is null ? NbdTlsMode.Off : NbdTlsMode.Allow) : Tls;

    /// <summary>Throws when a limit is out of range.</summary>
    public void Validate()
    {
        if (EffectiveTls is NbdTlsMode.Allow or NbdTlsMode.Require && Certificate is null)
            throw new ArgumentException($"NBD TLS is {Tls} but the server has no certificate");
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPayloadBytes, 65536);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxPayloadBytes, 32 * 1024 * 1024);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxRequestsInFlight, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConnections, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBytesInFlight, MaxPayloadBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxOptionBytes, 4096 + 8);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxOptions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(HandshakeTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(DrainTimeout, TimeSpan.Zero);
    }
}
