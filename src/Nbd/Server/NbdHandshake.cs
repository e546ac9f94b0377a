using System.Buffers.Binary;
using System.Net.Security;
using System.Security.Authentication;
using System.Text;
using TaggedMirror.Nbd.Protocol;

namespace TaggedMirror.Nbd.Server;

/// <summary>
/// Fixed newstyle negotiation (spec "Fixed newstyle negotiation"): the greeting, the client's flags, then options
/// until the client chooses an export (<c>GO</c> or <c>EXPORT_NAME</c>) or leaves (<c>ABORT</c>, or it closes). Every
/// option's data is read whole before it is answered, so a refused option leaves the stream in frame. What cannot be
/// answered in frame (a wrong magic, an oversized option, unknown client flags) ends the connection.
/// </summary>
internal sealed class NbdHandshake(Stream input, Stream output, INbdExports exports, NbdServerOptions options, string address)
{
    private Stream _input = input;
    private NbdClient _client = new(address);
    private Stream _output = output;
    private SslStream? _tls;

    /// <summary>Where the session reads requests: the connection's read buffer, or one over TLS after <c>NBD_OPT_STARTTLS</c>.</summary>
    public Stream Input => _input;

    /// <summary>Where the session writes replies: the connection, or its TLS stream.</summary>
    public Stream Output => _output;

    /// <summary>The TLS stream when the client upgraded (the caller disposes it), else null.</summary>
    public SslStream? Tls => _tls;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private bool _structured;
    private string? _allocationFor;   // the export base:allocation was chosen for, if any

    /// <summary>The session settled, or null when the client ended the handshake itself.</summary>
    public async Task<NbdSession?> NegotiateAsync(CancellationToken ct)
    {
        var greeting = new byte[NbdWire.GreetingSize];
        NbdWire.WriteGreeting(greeting);
        await _output.WriteAsync(greeting, ct).ConfigureAwait(false);
        await _output.FlushAsync(ct).ConfigureAwait(false);

        var buffer = new byte[NbdWire.OptionHeaderSize];
        if (!await ReadOrEndAsync(buffer.AsMemory(0, 4), ct).ConfigureAwait(false)) return null;
        var clientFlags = BinaryPrimitives.ReadUInt32BigEndian(buffer);
        if ((clientFlags & ~(NbdMagic.ClientFixedNewstyle | NbdMagic.ClientNoZeroes)) != 0)
            throw new NbdProtocolException($"client flags 0x{clientFlags:x8} carry bits this server does not know");
        var noZeroes = (clientFlags & NbdMagic.ClientNoZeroes) != 0;

        for (var count = 1; ; count++)
        {
            if (count > options.MaxOptions) throw new NbdProtocolException($"more than {options.MaxOptions} options without choosing an export");
            if (!await ReadOrEndAsync(buffer, ct).ConfigureAwait(false)) return null;
            if (!NbdWire.TryReadOptionHeader(buffer, out var option, out var length))
                throw new NbdProtocolException("an option request does not start with IHAVEOPT");
            if (length > (uint)options.MaxOptionBytes)
                throw new NbdProtocolException($"option {option} carries {length} bytes, more than the {options.MaxOptionBytes} accepted");
            var data = new byte[length];
            await _input.ReadExactlyAsync(data, ct).ConfigureAwait(false);

            if (options.EffectiveTls == NbdTlsMode.Require && _tls is null && option is not (NbdOption.StartTls or NbdOption.Abort))
            {
                // Nothing about the exports before TLS, not even whether one exists (spec, "TLS support": FORCEDTLS).
                if (option == NbdOption.ExportName)
                    throw new NbdProtocolException("NBD_OPT_EXPORT_NAME before TLS, which this server requires");
                await ErrorAsync(option, NbdReplyType.ErrTlsRequired,
                    "this server requires TLS: upgrade with NBD_OPT_STARTTLS first (qemu: tls-creds; libnbd: nbds:// URIs)", ct).ConfigureAwait(false);
                continue;
            }
            switch (option)
            {
                case NbdOption.ExportName:
                    return await ExportNameAsync(data, noZeroes, ct).ConfigureAwait(false);
                case NbdOption.Abort:
                    // The client may close without reading this.
                    try
                    {
                        await ReplyAsync(option, NbdReplyType.Ack, ReadOnlyMemory<byte>.Empty, ct).ConfigureAwait(false);
                    }
                    catch (IOException)
                    {
                    }
                    return null;
                case NbdOption.List:
                    await ListAsync(data, ct).ConfigureAwait(false);
                    break;
                case NbdOption.Info:
                case NbdOption.Go:
                    if (await InfoAsync(option, data, ct).ConfigureAwait(false) is { } session) return session;
                    break;
                case NbdOption.StructuredReply:
                    if (data.Length != 0)
                    {
                        await ErrorAsync(option, NbdReplyType.ErrInvalid, "NBD_OPT_STRUCTURED_REPLY carries no data", ct).ConfigureAwait(false);
                        break;
                    }
                    _structured = true;
                    await ReplyAsync(option, NbdReplyType.Ack, ReadOnlyMemory<byte>.Empty, ct).ConfigureAwait(false);
                    break;
                case NbdOption.ListMetaContext:
                case NbdOption.SetMetaContext:
                    await MetaContextAsync(option, data, ct).ConfigureAwait(false);
                    break;
                case NbdOption.StartTls:
                    await StartTlsAsync(data, ct).ConfigureAwait(false);
                    break;
                default:
                    await ErrorAsync(option, NbdReplyType.ErrUnsupported, $"option {(uint)option} is not supported", ct).ConfigureAwait(false);
                    break;
            }
        }
    }

    /// <summary>
    /// <c>NBD_OPT_STARTTLS</c>: acknowledged, then the TLS handshake on the same connection, and the option haggling
    /// goes on inside TLS. What was negotiated before it (structured replies, a metadata context) is forgotten: a
    /// client asks again over TLS (spec, "TLS support").
    /// </summary>
    private async Task StartTlsAsync(byte[] data, CancellationToken ct)
    {
        if (options.EffectiveTls == NbdTlsMode.Off || options.Certificate is null)
        {
            await ErrorAsync(NbdOption.StartTls, NbdReplyType.ErrUnsupported, "this server does not offer TLS", ct).ConfigureAwait(false);
            return;
        }
        if (_tls is not null)
        {
            await ErrorAsync(NbdOption.StartTls, NbdReplyType.ErrInvalid, "TLS is on already", ct).ConfigureAwait(false);
            return;
        }
        if (data.Length != 0)
        {
            await ErrorAsync(NbdOption.StartTls, NbdReplyType.ErrInvalid, "NBD_OPT_STARTTLS carries no data", ct).ConfigureAwait(false);
            return;
        }
        await ReplyAsync(NbdOption.StartTls, NbdReplyType.Ack, ReadOnlyMemory<byte>.Empty, ct).ConfigureAwait(false);
        // Straight on the connection (the output is the socket's stream): the client sends its ClientHello only after
        // this ACK, so the read buffer holds nothing of it (TLS layered on that buffer stalled payloads of 32 KiB or more).
        var tls = new SslStream(_output, leaveInnerStreamOpen: true);
        try
        {
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificate = options.Certificate,
                // With client authorities, a client proves who it is or the handshake fails.
                ClientCertificateRequired = options.ClientCertificateAuthorities is not null,
                RemoteCertificateValidationCallback = options.ClientCertificateAuthorities is { } roots ? (_, presented, _, _) => Trusted(presented, roots) : null,
            }, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            throw new NbdProtocolException($"the TLS handshake failed: {ex.Message}");
        }
        _tls = tls;
        if (options.ClientCertificateAuthorities is not null && tls.RemoteCertificate is { } proved)
            _client = _client with { Certificate = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(proved.GetRawCertData()) };
        _input = new BufferedStream(tls, 128 * 1024);
        _output = tls;
        _structured = false;
        _allocationFor = null;
    }

    /// <summary>A client certificate chained to one of <paramref name="roots"/> (no revocation lists: the host checks the identity it names).</summary>
    private static bool Trusted(System.Security.Cryptography.X509Certificates.X509Certificate? presented, System.Security.Cryptography.X509Certificates.X509Certificate2Collection roots)
    {
        if (presented is null) return false;
        using var certificate = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(presented.GetRawCertData());
        using var chain = new System.Security.Cryptography.X509Certificates.X509Chain();
        chain.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    private async Task<NbdSession?> ExportNameAsync(byte[] data, bool noZeroes, CancellationToken ct)
    {
        // No error reply exists for this option: an unknown name can only close the connection.
        string name;
        try
        {
            name = StrictUtf8.GetString(data);
        }
        catch (DecoderFallbackException)
        {
            throw new NbdProtocolException("NBD_OPT_EXPORT_NAME: the name is not UTF-8");
        }
        var opened = await exports.OpenAsync(name, _client, ct).ConfigureAwait(false);
        if (opened.Export is not { } export) throw new NbdProtocolException($"NBD_OPT_EXPORT_NAME '{name}': {opened.Message}");
        await _output.WriteAsync(NbdWire.ExportNameReply(export.Size, NbdSession.Flags(_structured, export.ReadOnly), noZeroes), ct).ConfigureAwait(false);
        await _output.FlushAsync(ct).ConfigureAwait(false);
        return Session(export);
    }

    private async Task ListAsync(byte[] data, CancellationToken ct)
    {
        if (data.Length != 0)
        {
            await ErrorAsync(NbdOption.List, NbdReplyType.ErrInvalid, "NBD_OPT_LIST carries no data", ct).ConfigureAwait(false);
            return;
        }
        foreach (var entry in await exports.ListAsync(_client, ct).ConfigureAwait(false))
            await ReplyAsync(NbdOption.List, NbdReplyType.Server, NbdWire.ServerEntry(entry.Name, entry.Description), ct, flush: false).ConfigureAwait(false);
        await ReplyAsync(NbdOption.List, NbdReplyType.Ack, ReadOnlyMemory<byte>.Empty, ct).ConfigureAwait(false);
    }

    /// <summary>INFO and GO answer alike (the spec requires the same information from both); GO then starts transmission.</summary>
    private async Task<NbdSession?> InfoAsync(NbdOption option, byte[] data, CancellationToken ct)
    {
        if (!NbdExportQuery.TryParse(data, out var query, out var invalid))
        {
            await ErrorAsync(option, NbdReplyType.ErrInvalid, invalid, ct).ConfigureAwait(false);
            return null;
        }
        var opened = await exports.OpenAsync(query.Name, _client, ct).ConfigureAwait(false);
        if (opened.Export is not { } export)
        {
            await ErrorAsync(option, opened.Error, opened.Message, ct).ConfigureAwait(false);
            return null;
        }
        await ReplyAsync(option, NbdReplyType.Info, NbdWire.InfoExport(export.Size, NbdSession.Flags(_structured, export.ReadOnly)), ct, flush: false).ConfigureAwait(false);
        // Sent whether asked or not (allowed): a client that did not ask still gets EINVAL for what breaks it.
        await ReplyAsync(option, NbdReplyType.Info,
            NbdWire.InfoBlockSize(export.MinimumBlockSize, export.PreferredBlockSize, NbdSession.MaxPayloadFor(export, options.MaxPayloadBytes)), ct, flush: false).ConfigureAwait(false);
        if (query.Requested.Contains(NbdInfoType.Name))
            await ReplyAsync(option, NbdReplyType.Info, NbdWire.InfoText(NbdInfoType.Name, export.Name), ct, flush: false).ConfigureAwait(false);
        if (query.Requested.Contains(NbdInfoType.Description) && export.Description.Length > 0)
            await ReplyAsync(option, NbdReplyType.Info, NbdWire.InfoText(NbdInfoType.Description, export.Description), ct, flush: false).ConfigureAwait(false);
        await ReplyAsync(option, NbdReplyType.Ack, ReadOnlyMemory<byte>.Empty, ct).ConfigureAwait(false);
        return option == NbdOption.Go ? Session(export) : null;
    }

    private NbdSession Session(INbdExport export) =>
        new(export, _structured, _structured && string.Equals(_allocationFor, export.Name, StringComparison.Ordinal), NbdSession.MaxPayloadFor(export, options.MaxPayloadBytes));

    private async Task MetaContextAsync(NbdOption option, byte[] data, CancellationToken ct)
    {
        var set = option == NbdOption.SetMetaContext;
        if (set) _allocationFor = null;   // a SET replaces the selection, even one that fails
        if (!_structured)
        {
            await ErrorAsync(option, NbdReplyType.ErrInvalid, "metadata contexts need structured replies (NBD_OPT_STRUCTURED_REPLY first)", ct).ConfigureAwait(false);
            return;
        }
        if (!NbdMetaContextQuery.TryParse(data, out var query, out var invalid))
        {
            await ErrorAsync(option, NbdReplyType.ErrInvalid, invalid, ct).ConfigureAwait(false);
            return;
        }
        var opened = await exports.OpenAsync(query.Export, _client, ct).ConfigureAwait(false);
        if (opened.Export is null)
        {
            await ErrorAsync(option, opened.Error, opened.Message, ct).ConfigureAwait(false);
            return;
        }
        var allocation = set
            ? query.Queries.Contains(NbdMetaContextQuery.BaseAllocation)
            : query.Queries.Count == 0 || query.Queries.Any(q => q is "base:" or NbdMetaContextQuery.BaseAllocation);
        if (allocation)
        {
            // Ids: 1 for the selected context; a LIST's answers carry 0 (spec SHOULD).
            await ReplyAsync(option, NbdReplyType.MetaContext, NbdWire.MetaContext(set ? 1u : 0u, NbdMetaContextQuery.BaseAllocation), ct, flush: false).ConfigureAwait(false);
            if (set) _allocationFor = query.Export;
        }
        await ReplyAsync(option, NbdReplyType.Ack, ReadOnlyMemory<byte>.Empty, ct).ConfigureAwait(false);
    }

    private Task ErrorAsync(NbdOption option, NbdReplyType error, string message, CancellationToken ct) =>
        ReplyAsync(option, error, NbdWire.OptionError(option, error, message).AsMemory(NbdWire.OptionReplyHeaderSize), ct);

    private async Task ReplyAsync(NbdOption option, NbdReplyType type, ReadOnlyMemory<byte> data, CancellationToken ct, bool flush = true)
    {
        var header = new byte[NbdWire.OptionReplyHeaderSize];
        NbdWire.WriteOptionReply(header, option, type, data.Length);
        await _output.WriteAsync(header, ct).ConfigureAwait(false);
        if (data.Length > 0) await _output.WriteAsync(data, ct).ConfigureAwait(false);
        if (flush) await _output.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Reads <paramref name="buffer"/> whole; false when the client closed before its first byte (a clean end of the handshake).</summary>
    private async Task<bool> ReadOrEndAsync(Memory<byte> buffer, CancellationToken ct)
    {
        var first = await _input.ReadAsync(buffer, ct).ConfigureAwait(false);
        if (first == 0) return false;
        if (first < buffer.Length) await _input.ReadExactlyAsync(buffer[first..], ct).ConfigureAwait(false);
        return true;
    }
}
