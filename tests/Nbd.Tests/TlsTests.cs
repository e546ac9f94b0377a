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
    private readonly DirectoryInfo _dir = System.IO.Directory.CreateTempSubdirectory("tm-nbd-tls-");

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

    [Fact]
    public async Task with_client_authorities_only_a_client_certificate_they_signed_gets_in_and_the_export_sees_who_it_is()
    {
        using var serverCa = Ca("server-ca");
        using var clientCa = Ca("client-ca");
        using var otherCa = Ca("other-ca");
        var server = Issue(serverCa, "127.0.0.1", server: true);
        var disk = new MemoryExport("disk", Size);
        var readOnly = new MemoryExport("ro", Size) { ReadOnly = true };
        await using var nbd = new TestServer(new NbdServerOptions { Tls = NbdTlsMode.Require, Certificate = server, ClientCertificateAuthorities = [clientCa] }, disk, readOnly);

        var good = Directory(serverCa, (Issue(clientCa, "key-0123abcd", server: false), clientCa), "good");
        string[] Qemu(string dir, string export, params string[] commands) =>
        [
            "--object", $"tls-creds-x509,id=tls0,endpoint=client,dir={dir}",
            "--image-opts", $"driver=nbd,host=127.0.0.1,port={nbd.Port},export={export},tls-creds=tls0", .. commands.SelectMany(c => new[] { "-c", c }),
        ];
        await Tool.CheckAsync("qemu-io", Qemu(good, "disk", "write -P 0x3c 0 64k", "read -P 0x3c 0 64k"));
        Assert.All(disk.Snapshot()[..65536], b => Assert.Equal(0x3c, b));
        Assert.Contains(nbd.Served.Clients, c => c.Certificate?.Subject == "CN=key-0123abcd" && c.Address == "127.0.0.1");
        Assert.Equal(Size.ToString(System.Globalization.CultureInfo.InvariantCulture),
            (await Tool.CheckAsync("nbdinfo", "--size", $"nbds://127.0.0.1:{nbd.Port}/disk?tls-certificates={good}")).Trim());

        // No client certificate, or one another authority signed: the TLS handshake fails, nothing is opened or written.
        var before = disk.Snapshot();
        var opened = nbd.Served.Clients.Count;
        foreach (var dir in new[] { Directory(serverCa, null, "none"), Directory(serverCa, (Issue(otherCa, "key-0123abcd", server: false), otherCa), "other") })
        {
            var refused = await Tool.RunAsync("qemu-io", Qemu(dir, "disk", "write -P 0x99 0 64k"));
            Assert.True(refused.ExitCode != 0 || refused.Stderr.Length > 0, refused.ToString());
            var info = await Tool.RunAsync("nbdinfo", ["--size", $"nbds://127.0.0.1:{nbd.Port}/disk?tls-certificates={dir}"]);
            Assert.True(info.ExitCode != 0, info.ToString());
        }
        Assert.Equal(before, disk.Snapshot());
        Assert.Equal(opened, nbd.Served.Clients.Count);

        // A read-only export: advertised so (qemu opens it read-only or not at all), reads served.
        await Tool.CheckAsync("qemu-io", ["-r", .. Qemu(good, "ro", "read -P 0 0 64k")]);
        var rw = await Tool.RunAsync("qemu-io", Qemu(good, "ro", "write -P 0x01 0 4k"));
        Assert.DoesNotContain("wrote", rw.Stdout, StringComparison.Ordinal);
        Assert.Equal(0, readOnly.Writes);
        var json = await Tool.CheckAsync("nbdinfo", "--json", $"nbds://127.0.0.1:{nbd.Port}/ro?tls-certificates={good}");
        Assert.True(System.Text.Json.JsonDocument.Parse(json).RootElement.GetProperty("exports")[0].GetProperty("is_read_only").GetBoolean(), json);
    }

    [Fact]
    public async Task a_read_only_export_refuses_writes_zeroes_and_trims_with_eperm_and_serves_reads()
    {
        var disk = new MemoryExport("ro", Size) { ReadOnly = true };
        await using var nbd = new TestServer(null, disk);
        await using var c = await RawClient.OpenAsync(nbd.Port, "ro");
        ulong cookie = 0;
        foreach (var (command, payload) in new (NbdCommand, byte[]?)[] { (NbdCommand.Write, new byte[4096]), (NbdCommand.WriteZeroes, null), (NbdCommand.Trim, null) })
        {
            await c.SendRequestAsync(command, ++cookie, 0, 4096, payload);
            var reply = await c.ReadReplyAsync();
            Assert.True(reply.Error == NbdError.NotPermitted, $"{command}: {reply.Error} {reply.Message}");
        }
        await c.SendRequestAsync(NbdCommand.Read, ++cookie, 0, 4096);
        Assert.Equal(NbdError.None, (await c.ReadReplyAsync(4096)).Error);
        Assert.Equal(0, disk.Writes);
    }

    private static X509Certificate2 Ca(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN=tm test {name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(ca.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>A certificate <paramref name="ca"/> signed: a server's for 127.0.0.1, or a client's named <paramref name="name"/>.</summary>
    private static X509Certificate2 Issue(X509Certificate2 ca, string name, bool server)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        if (server)
        {
            var names = new SubjectAlternativeNameBuilder();
            names.AddIpAddress(System.Net.IPAddress.Loopback);
            names.AddDnsName("localhost");
            request.CertificateExtensions.Add(names.Build());
        }
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(server ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
        using var signed = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(12), RandomNumberGenerator.GetBytes(8));
        using var withKey = signed.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>A client's credentials directory as qemu and libnbd read it: ca-cert.pem, and client-cert.pem/client-key.pem when given.</summary>
    /// (qemu checks its own certificate against ca-cert.pem too, so the client's issuer goes there beside the server's.)
    private string Directory(X509Certificate2 serverCa, (X509Certificate2 Certificate, X509Certificate2 Issuer)? client, string name)
    {
        var dir = System.IO.Directory.CreateDirectory(Path.Combine(_dir.FullName, name)).FullName;
        File.WriteAllText(Path.Combine(dir, "ca-cert.pem"), serverCa.ExportCertificatePem() + "\n" + (client?.Issuer.ExportCertificatePem() ?? ""));
        if (client is { Certificate: var c })
        {
            File.WriteAllText(Path.Combine(dir, "client-cert.pem"), c.ExportCertificatePem());
            File.WriteAllText(Path.Combine(dir, "client-key.pem"), c.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        }
        return dir;
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

        var dir = System.IO.Directory.CreateDirectory(Path.Combine(_dir.FullName, name)).FullName;
        File.WriteAllText(Path.Combine(dir, "ca-cert.pem"), ca.ExportCertificatePem());
        return (server, dir);
    }
}
