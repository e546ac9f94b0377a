using TaggedMirror.Nbd.Protocol;

namespace TaggedMirror.Nbd.Server;

/// <summary>What a server exports: listed for <c>NBD_OPT_LIST</c>, opened by name for <c>INFO</c>/<c>GO</c>/<c>EXPORT_NAME</c>.</summary>
public interface INbdExports
{
    /// <summary>The exports <paramref name="client"/> may list (name and a line of description each).</summary>
    ValueTask<IReadOnlyList<NbdExportEntry>> ListAsync(NbdClient client, CancellationToken ct);

    /// <summary>Opens the export named <paramref name="name"/> for one connection from <paramref name="client"/>, or says why not.</summary>
    ValueTask<NbdOpenResult> OpenAsync(string name, NbdClient client, CancellationToken ct);
}

/// <summary>Who a connection is: its address as the server saw it, and the certificate it proved over TLS, if any.</summary>
/// <param name="Address">The peer's IP address.</param>
/// <param name="Certificate">
/// The client certificate, when the server asks for them (<see cref="NbdServerOptions.ClientCertificateAuthorities"/>)
/// and the client upgraded to TLS: chained to one of those authorities, checked by the server. Null otherwise.
/// </param>
public sealed record NbdClient(string Address, System.Security.Cryptography.X509Certificates.X509Certificate2? Certificate = null);

/// <summary>One line of an export list.</summary>
/// <param name="Name">The export's name, as a client asks for it.</param>
/// <param name="Description">Human-readable; may be empty.</param>
public sealed record NbdExportEntry(string Name, string Description);

/// <summary>
/// An export opened for one connection. The server has checked every request against <see cref="Size"/> and
/// <see cref="MinimumBlockSize"/> before calling it (aligned, within the size, not empty, a payload not above the
/// server's maximum). Failures are <see cref="NbdException"/> with the error the client gets; any other exception
/// is answered <c>EIO</c> with its message.
/// </summary>
public interface INbdExport
{
    /// <summary>The export's name.</summary>
    string Name { get; }

    /// <summary>Human-readable; may be empty.</summary>
    string Description { get; }

    /// <summary>Bytes, a multiple of <see cref="MinimumBlockSize"/>; fixed for the connection.</summary>
    ulong Size { get; }

    /// <summary>Every offset and length is a multiple of it: a power of two from 1 to 65536.</summary>
    uint MinimumBlockSize { get; }

    /// <summary>The size of request the export serves best: a power of two, at least the minimum and 512.</summary>
    uint PreferredBlockSize { get; }

    /// <summary>Exactly <paramref name="length"/> bytes from <paramref name="offset"/>.</summary>
    ValueTask<byte[]> ReadAsync(ulong offset, int length, CancellationToken ct);

    /// <summary>Writes <paramref name="data"/> (owned by the export from here on) at <paramref name="offset"/>.</summary>
    ValueTask WriteAsync(ulong offset, byte[] data, bool fua, CancellationToken ct);

    /// <summary>Makes [<paramref name="offset"/>, +<paramref name="length"/>) read as zeroes.</summary>
    ValueTask WriteZeroesAsync(ulong offset, ulong length, bool fua, CancellationToken ct);

    /// <summary>The client no longer needs [<paramref name="offset"/>, +<paramref name="length"/>); what it reads afterwards is unspecified.</summary>
    ValueTask TrimAsync(ulong offset, ulong length, bool fua, CancellationToken ct);

    /// <summary>Returns once every write answered before it was called is durable.</summary>
    ValueTask FlushAsync(CancellationToken ct);

    /// <summary>
    /// The <c>base:allocation</c> status of [<paramref name="offset"/>, +<paramref name="length"/>): consecutive extents
    /// from <paramref name="offset"/>, each a multiple of <see cref="MinimumBlockSize"/>, covering the range or a start
    /// of it (at least one). An extent may say <see cref="NbdAllocation.Zero"/> only if every write answered before this
    /// call left it reading as zeroes. The default says the whole range is data: always true.
    /// </summary>
    ValueTask<IReadOnlyList<NbdExtent>> BlockStatusAsync(ulong offset, uint length, CancellationToken ct) =>
        ValueTask.FromResult<IReadOnlyList<NbdExtent>>([new NbdExtent(length, NbdAllocation.Data)]);

    /// <summary>Read-only for this connection: advertised as such, and every write, zeroing or trim is refused with <c>EPERM</c>.</summary>
    bool ReadOnly => false;
}
