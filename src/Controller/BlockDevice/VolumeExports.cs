using System.Security.Cryptography.X509Certificates;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Reads;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting.Access;
using TaggedMirror.Nbd.Protocol;
using TaggedMirror.Nbd.Server;

namespace TaggedMirror.Controller.BlockDevice;

/// <summary>
/// Every volume this controller owns is an NBD export named after it. A volume owned by another controller is
/// refused with the reason (a client connects to its owner), an unknown name is unknown.
/// <para>
/// With client authorities (<see cref="ControllerOptions.NbdClientCaFile"/>) a client is the API key its certificate
/// names (subject CN = the key's id): it lists and opens only the volumes that key may read, read-only where the key
/// may not write, and is refused when the key is unknown or revoked; one without a certificate gets nothing
/// (docs/design.md, "Who may use an NBD export"). With <see cref="ControllerOptions.NbdAnonymous"/> instead, every
/// client gets every volume. With neither, nothing is served: the list is empty and every open is refused with a
/// sentence naming the two settings.
/// </para>
/// </summary>
internal sealed class VolumeExports(VolumeCatalog catalog, WritePipeline pipeline, VolumeReader reader, ControllerOptions options, ApiKeyLookup keys) : INbdExports
{
    /// <summary>Why no client is served: neither way of deciding who may use a volume is configured.</summary>
    public const string NotConfigured =
        "this server has no NBD access configured: its operator sets Controller__NbdClientCaFile (clients present certificates made with tm key cert) or Controller__NbdAnonymous=true (every volume to whoever reaches the port)";

    private bool KeysRequired => options.Nbd.ClientCertificateAuthorities is not null;

    public async ValueTask<IReadOnlyList<NbdExportEntry>> ListAsync(NbdClient client, CancellationToken ct)
    {
        var (principal, refusal) = await IdentifyAsync(client, ct);
        if (refusal is not null) return [];
        return [.. catalog.All.Where(v => v.Owned && (principal?.MayRead(v.Name) ?? true)).Select(v => new NbdExportEntry(v.Name, Describe(v)))];
    }

    public async ValueTask<NbdOpenResult> OpenAsync(string name, NbdClient client, CancellationToken ct)
    {
        var (principal, refusal) = await IdentifyAsync(client, ct);
        if (refusal is not null) return NbdOpenResult.Refused(refusal);
        // Refused before the volume is looked up: a key learns nothing of volumes it may not use.
        if (principal is not null && !principal.MayRead(name))
            return NbdOpenResult.Refused($"key {principal.KeyId} may not use volume {name}");
        if (catalog.Find(name) is not { } v)
            return NbdOpenResult.Unknown(name.Length == 0 ? "there is no default export: name a volume (nbd://host:10809/<volume>)" : $"no volume named '{name}'");
        if (!v.Owned) return NbdOpenResult.Refused($"volume {name} is served by another controller: connect to its owner");
        var origin = principal is null ? WriteOrigin.Nbd(client.Address) : WriteOrigin.Key(principal.KeyId);
        return NbdOpenResult.Opened(new VolumeExport(v, catalog, pipeline, reader, options, Describe(v), origin,
            readOnly: principal is not null && !principal.MayWrite(name),
            authorize: principal is null ? null : c => StillLiveAsync(principal.KeyId, name, c)));
    }

    /// <summary>
    /// Before each request of a connection that acts as a key: that key is still live (the lookup's one-second cache,
    /// so a revocation holds within a second on open connections too). While PostgreSQL is away the key stands as last
    /// seen, as on the API.
    /// </summary>
    private async ValueTask StillLiveAsync(string keyId, string volume, CancellationToken ct)
    {
        if (await keys.FindLiveAsync(keyId, ct) is null)
            throw new NbdException(NbdError.NotPermitted, $"key {keyId} was revoked: this connection may not use volume {volume} any more");
    }

    /// <summary>The key a client's certificate names, or why the client gets nothing; (null, null) when keys are not asked for.</summary>
    private async ValueTask<(Principal? Principal, string? Refusal)> IdentifyAsync(NbdClient client, CancellationToken ct)
    {
        if (!KeysRequired) return options.NbdAnonymous ? (null, null) : (null, NotConfigured);
        if (client.Certificate is not { } certificate)
            return (null, "this server serves volumes to clients with a certificate only: connect over TLS with a client certificate (tm key cert)");
        var id = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        if (!KeyText.IsId(id))
            return (null, $"the client certificate names '{id}', which is not an API key id");
        try
        {
            return await keys.FindLiveAsync(id, ct) is { } principal ? (principal, null) : (null, $"key {id} is unknown or revoked");
        }
        catch (KeyLookupUnavailableException)
        {
            return (null, $"key {id} cannot be checked now (PostgreSQL does not answer); try again");
        }
    }

    private static string Describe(Volume v) =>
        $"{v.Blocks} blocks of {v.BlockSize} B mirrored on {string.Join(", ", v.Mirrors.Select(m => m.DeviceId))}";
}
