using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Api;

/// <summary>
/// Which servers the CLI trusts over <c>https://</c>: the system's roots, or, when <c>$TM_CA_FILE</c> names a PEM file,
/// only the certificates in it (a private CA, or the local stack's self-signed certificate). The host name must match
/// the certificate either way.
/// </summary>
internal static class TlsTrust
{
    public static void Apply(SocketsHttpHandler handler)
    {
        if (Environment.GetEnvironmentVariable(AccessHeaders.CaFileEnvironment) is not { Length: > 0 } file) return;
        var roots = Load(file);
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
        {
            if (certificate is null || (errors & (SslPolicyErrors.RemoteCertificateNotAvailable | SslPolicyErrors.RemoteCertificateNameMismatch)) != 0)
                return false;
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(roots);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            using var presented = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            return chain.Build(presented);
        };
    }

    /// <summary>Why a TLS handshake failed, as a hint for the sentence the CLI prints.</summary>
    public static string Hint =>
        Environment.GetEnvironmentVariable(AccessHeaders.CaFileEnvironment) is { Length: > 0 } file
            ? $"the server's certificate is not signed by the certificates in ${AccessHeaders.CaFileEnvironment} ({file}), or does not name this host"
            : $"the server's certificate is not trusted by this system: set ${AccessHeaders.CaFileEnvironment} to the PEM file of its CA (the local stack's is .run/tls/ca.pem)";

    private static X509Certificate2Collection Load(string file)
    {
        var roots = new X509Certificate2Collection();
        try
        {
            roots.ImportFromPemFile(file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new CliException($"${AccessHeaders.CaFileEnvironment} names {file}, which cannot be read as PEM certificates: {ex.Message}");
        }
        if (roots.Count == 0) throw new CliException($"${AccessHeaders.CaFileEnvironment} names {file}, which holds no PEM certificate");
        return roots;
    }
}
