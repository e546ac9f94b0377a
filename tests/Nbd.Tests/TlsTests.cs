using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using TaggedMirror.Nbd.Protocol;
using TaggedMirror.Nbd.Server;
using TaggedMirror.Nbd.Tests.Support;

namespace TaggedMirror.Nbd.Tests;

/// <summary>
/// <c>NBD_OPT_STARTTLS</c> against the real clients: qemu-io with <c>tls-creds-x509</c> and libnbd's <c>nbds://</c>
/// (nbdinfo, nbdcopy), with the server's CA and with another one; <c>require</c> refuses everything before TLS,
/// <c>allow</c> serves both.
/// </summary>
public sealed class TlsTests : IDisposable
{
    private const int Size = 4 * 1024 * 1024;
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("tm-nbd-tls-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task with_tls_required_real_clients_that_trust_the_ca_read_and_write_and_others_get_nothing()
    {
        var (server, trusted) = Certificates("right");
        var (_, untrusted) = Certificates("wrong");
        var disk = new MemoryExport("disk", Size);
        await using var nbd = new TestServer(new NbdServerOptions { Tls = NbdTlsMode.Require, Certificate = server }, disk);

        // qemu over TLS: writes, reads back.
        var output = await Tool.CheckAsync("qemu-io", "--object", $"tls-creds-x509,id=tls0,endpoint=client,dir={trusted}",
            "--image-opts", $"driver=nbd,host=127.0.0.1,port={nbd.Port},export=disk,tls-creds=tls0",
            "-c", "write -P 0x6b 64k 128k", "-c", "read -P 0x6b 64k 128k");
        Assert.DoesNotContain("fail", output, StringComparison.OrdinalIgnoreCase);
        Assert.All(disk.Snapshot()[(64 * 1024)..(192 * 1024)], b => Assert.Equal(0x6b, b));
        // libnbd over TLS: the size, and a whole copy out.
        Assert.Equal(Size.ToString(System.Globalization.CultureInfo.InvariantCulture),
            (await Tool.CheckAsync("nbdinfo", "--size", $"nbds://127.0.0.1:{nbd.Port}/disk?tls-certificates={trusted}")).Trim());
        var copy = Path.Combine(_dir.FullName, "copy.img");
        await Tool.CheckAsync("nbdcopy", $"nbds://127.0.0.1:{nbd.Port}/disk?tls-certificates={trusted}", copy);
        Assert.Equal(disk.Snapshot(), await File.ReadAllBytesAsync(copy));

        // Without TLS, and with TLS to a server its CA did not sign: refused, nothing written.
        var before = disk.Snapshot();
        var plain = await Tool.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 0x11 0 64k", nbd.Uri("disk")]);
        Assert.True(plain.ExitCode != 0 || plain.Stdout.Contains("fail", StringComparison.OrdinalIgnoreCase) || plain.Stderr.Length > 0, plain.ToString());
        Assert.Contains("TLS", plain.ToString(), StringComparison.Ordinal);
        var plainInfo = await Tool.RunAsync("nbdinfo", ["--size", nbd.Uri("disk")]);
        Assert.True(plainInfo.ExitCode != 0, plainInfo.ToString());
        var wrongCa = await Tool.RunAsync("qemu-io", ["--object", $"tls-creds-x509,id=tls0,endpoint=client,dir={untrusted}",
            "--image-opts", $"driver=nbd,host=127.0.0.1,port={nbd.Port},export=disk,tls-creds=tls0", "-c", "write -P 0x22 0 64k"]);
        Assert.True(wrongCa.ExitCode != 0 || wrongCa.Stderr.Length > 0, wrongCa.ToString());
        var wrongInfo = await Tool.RunAsync("nbdinfo", ["--size", $"nbds://127.0.0.1:{nbd.Port}/disk?tls-certificates={untrusted}"]);
        Assert.True(wrongInfo.ExitCode != 0, wrongInfo.ToString());
        Assert.Equal(before, disk.Snapshot());

        // The protocol's answers before TLS: ERR_TLS_REQD for every option but STARTTLS and ABORT, and EXPORT_NAME
        // (which has no error reply) ends the connection.
        await using (var c = await RawClient.HandshakeAsync(nbd.Port))
        {
            foreach (var (option, data) in new (NbdOption, byte[])[] { (NbdOption.List, []), (NbdOption.Info, RawClient.ExportQuery("disk")),
                         (NbdOption.Go, RawClient.ExportQuery("disk")), (NbdOption.StructuredReply, []), (NbdOption.ListMetaContext, RawClient.MetaQuery("disk")) })
            {
                await c.SendOptionAsync(option, data);
                var reply = await c.ReadOptionReplyAsync();
                Assert.True(reply.Type == NbdReplyType.ErrTlsRequired, $"{option} before TLS: {reply.Type}");
            }
            await c.SendOptionAsync(NbdOption.StartTls, [1]);
            Assert.Equal(NbdReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Type);
            await c.SendOptionAsync(NbdOption.ExportName, "disk"u8.ToArray());
            Assert.True(await c.ClosedByServerAsync());
        }
        Assert.Equal(before, disk.Snapshot());
    }

    [Fact]
    public async Task with_tls_allowed_clients_use_it_or_not_and_a_server_without_a_certificate_offers_none()
    {
        var (server, trusted) = Certificates("ca");
        var disk = new MemoryExport("disk", Size);
        await using (var nbd = new TestServer(new NbdServerOptions { Certificate = server }, disk))   // Auto with a certificate: allow
        {
            await Tool.CheckAsync("qemu-io", "--object", $"tls-creds-x509,id=tls0,endpoint=client,dir={trusted}",
                "--image-opts", $"driver=nbd,host=127.0.0.1,port={nbd.Port},export=disk,tls-creds=tls0", "-c", "write -P 0x01 0 64k");
            await Tool.CheckAsync("qemu-io", "-f", "raw", "-c", "read -P 0x01 0 64k", "-c", "write -P 0x02 64k 64k", nbd.Uri("disk"));
            Assert.All(disk.Snapshot()[(64 * 1024)..(128 * 1024)], b => Assert.Equal(0x02, b));
        }
        await using (var off = new TestServer(new NbdServerOptions { Tls = NbdTlsMode.Off, Certificate = server }, disk))
        {
            var refused = await Tool.RunAsync("nbdinfo", ["--size", $"nbds://127.0.0.1:{off.Port}/disk?tls-certificates={trusted}"]);
            Assert.True(refused.ExitCode != 0, refused.ToString());
        }
        Assert.Throws<ArgumentException>(() => new NbdServerOptions { Tls = NbdTlsMode.Require }.Validate());
    }

    /// <summary>A CA and a server certificate it signed for 127.0.0.1; the CA's PEM in a directory as qemu and libnbd want it (ca-cert.pem).</summary>
    private (X509Certificate2 Server, string CaDirectory) Certificates(string name)
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest($"CN=tm test CA {name}", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));

        using var serverKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", serverKey, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var signed = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(12), [1, 2, 3, 4, 5, 6, 7, 8]);
        // Through PKCS#12, so the certificate owns its key (the ECDsa above is disposed when this returns).
        using var withKey = signed.CopyWithPrivateKey(serverKey);
        var server = X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);

        var dir = Directory.CreateDirectory(Path.Combine(_dir.FullName, name)).FullName;
        File.WriteAllText(Path.Combine(dir, "ca-cert.pem"), ca.ExportCertificatePem());
        return (server, dir);
    }
}
