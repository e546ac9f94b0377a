using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace TaggedMirror.Cli.Api;

/// <summary>Makes an NBD client's credentials directory: a certificate naming an API key, signed by the client CA.</summary>
internal static class NbdClientCertificate
{
    public static string Write(string keyId, string caCertFile, string caKeyFile, string serverCaFile, string directory, int days)
    {
        X509Certificate2 ca;
        string serverCa;
        try
        {
            ca = X509Certificate2.CreateFromPemFile(caCertFile, caKeyFile);
            serverCa = File.ReadAllText(serverCaFile);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new CliException($"cannot read the CA ({caCertFile}, {caKeyFile}) or the server's CA ({serverCaFile}): {ex.Message}");
        }
        using (ca)
        {
            if (!ca.HasPrivateKey) throw new CliException($"{caKeyFile} is not the private key of {caCertFile}");
            if (!serverCa.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal)) throw new CliException($"{serverCaFile} holds no PEM certificate");
            // The client's key is of the CA's kind (an RSA CA signs with its padding, which a request needs to name).
            using AsymmetricAlgorithm key = ca.GetRSAPrivateKey() is null ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : RSA.Create(2048);
            var request = key is RSA rsa
                ? new CertificateRequest($"CN={keyId}", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
                : new CertificateRequest($"CN={keyId}", (ECDsa)key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));   // TLS client
            var notAfter = DateTimeOffset.UtcNow.AddDays(days);
            if (notAfter > ca.NotAfter) notAfter = ca.NotAfter;
            using var certificate = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), notAfter, RandomNumberGenerator.GetBytes(16));
            var dir = Directory.CreateDirectory(directory).FullName;
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            File.WriteAllText(Path.Combine(dir, "client-cert.pem"), certificate.ExportCertificatePem());
            var keyFile = Path.Combine(dir, "client-key.pem");
            File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.WriteAllText(Path.Combine(dir, "ca-cert.pem"), serverCa.TrimEnd() + "\n" + ca.ExportCertificatePem() + "\n");
            return dir;
        }
    }
}
