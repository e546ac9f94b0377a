using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;
using TaggedMirror.Nbd.Tests.Support;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Access control on the NBD port (issue #12): with <c>Controller__NbdClientCaFile</c>, a client is the API key its
/// certificate names (made by <c>tm key cert</c>), with that key's scope — real clients (qemu-io, nbdinfo) with a
/// writer's, a read-only key's and another volume's certificate, none, and a revoked key's.
/// </summary>
public sealed class NbdAccessTests : IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("tm-nbd-keys-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task a_client_certificate_acts_as_the_key_it_names_and_nothing_else_gets_in()
    {
        var (caCert, caKey) = ClientCa();
        await using var cluster = await TestCluster.StartAsync(tls: true, controllerSettings: new() { ["Controller__NbdClientCaFile"] = caCert });
        await cluster.CreateVolumeAsync("a", 4096, 64);
        await cluster.CreateVolumeAsync("b", 4096, 64);
        var writer = await cluster.CreateKeyAsync(new CreateKeyRequest(AccessRoles.Producer, ["a"]));
        var reader = await cluster.CreateKeyAsync(new CreateKeyRequest(AccessRoles.Producer, ["a"], ReadOnly: true));
        var other = await cluster.CreateKeyAsync(new CreateKeyRequest(AccessRoles.Producer, ["b"]));
        var writerDir = await CertAsync(cluster, writer.Info.Id, caCert, caKey);
        var readerDir = await CertAsync(cluster, reader.Info.Id, caCert, caKey);
        var otherDir = await CertAsync(cluster, other.Info.Id, caCert, caKey);
        var noCertDir = Directory.CreateDirectory(Path.Combine(_dir.FullName, "none")).FullName;
        File.Copy(Path.Combine(writerDir, "ca-cert.pem"), Path.Combine(noCertDir, "ca-cert.pem"));
        string[] Qemu(string dir, string volume, params string[] commands) =>
        [
            "--object", $"tls-creds-x509,id=tls0,endpoint=client,dir={dir}",
            "--image-opts", $"driver=nbd,host=127.0.0.1,port={cluster.NbdPort},export={volume},tls-creds=tls0", .. commands.SelectMany(c => new[] { "-c", c }),
        ];

        // The writer's certificate writes and reads its volume, and the write is recorded as the key's.
        await Tool.CheckAsync("qemu-io", Qemu(writerDir, "a", "write -P 0x5a 0 8k", "read -P 0x5a 0 8k"));
        await Eventually.TrueAsync(async () => (await WriterOfAsync(cluster, "a", 1))?.AppliedBy.Length == 2, TimeSpan.FromSeconds(30), () => "block 1 of a never recorded on both mirrors");
        Assert.Equal("key:" + writer.Info.Id, (await WriterOfAsync(cluster, "a", 1))!.Principal);
        // The read-only key's reads (qemu opens it read-only: the export says so); a write cannot even open it.
        await Tool.CheckAsync("qemu-io", ["-r", .. Qemu(readerDir, "a", "read -P 0x5a 0 8k")]);
        var readerWrites = await Tool.RunAsync("qemu-io", Qemu(readerDir, "a", "write -P 0x01 0 4k"));
        Assert.DoesNotContain("wrote", readerWrites.Stdout, StringComparison.Ordinal);
        // Another volume's key: neither listed nor opened; no certificate, or plain NBD: nothing.
        var listed = JsonDocument.Parse(await Tool.CheckAsync("nbdinfo", "--list", "--json", $"nbds://127.0.0.1:{cluster.NbdPort}?tls-certificates={otherDir}"));
        Assert.Equal(["b"], listed.RootElement.GetProperty("exports").EnumerateArray().Select(e => e.GetProperty("export-name").GetString()));
        foreach (var refused in new[]
                 {
                     await Tool.RunAsync("qemu-io", Qemu(otherDir, "a", "write -P 0x02 0 4k")),
                     await Tool.RunAsync("qemu-io", Qemu(noCertDir, "a", "write -P 0x03 0 4k")),
                     await Tool.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 0x04 0 4k", cluster.NbdUri("a")]),
                     await Tool.RunAsync("nbdinfo", ["--size", cluster.NbdUri("a")]),
                 })
        {
            Assert.True(!refused.Stdout.Contains("wrote", StringComparison.Ordinal) && (refused.ExitCode != 0 || refused.Stderr.Length > 0), refused.ToString());
        }

        // Revoked: a connection open since before can do nothing more (EPERM), and the next connection is refused.
        var start = new System.Diagnostics.ProcessStartInfo("qemu-io") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in Qemu(writerDir, "a")) start.ArgumentList.Add(a);
        using var open = System.Diagnostics.Process.Start(start)!;
        var openOutput = new System.Text.StringBuilder();
        open.OutputDataReceived += (_, e) => { lock (openOutput) openOutput.AppendLine(e.Data); };
        open.ErrorDataReceived += (_, e) => { lock (openOutput) openOutput.AppendLine(e.Data); };
        open.BeginOutputReadLine();
        open.BeginErrorReadLine();
        string Seen() { lock (openOutput) return openOutput.ToString(); }
        await open.StandardInput.WriteLineAsync("write -P 0x5a 16k 4k");
        await Eventually.TrueAsync(() => Task.FromResult(Seen().Contains("wrote 4096/4096", StringComparison.Ordinal)), TimeSpan.FromSeconds(30), () => "the open connection's first write: " + Seen());
        using (var r = await cluster.Http.DeleteAsync(new Uri($"{cluster.Controller.Url}/keys/{writer.Info.Id}")))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        await Task.Delay(TimeSpan.FromSeconds(1.5));   // another controller's cache; this one forgot it at once
        await open.StandardInput.WriteLineAsync("write -P 0x06 16k 4k");
        await open.StandardInput.WriteLineAsync("read 16k 4k");
        await open.StandardInput.WriteLineAsync("quit");
        open.StandardInput.Close();
        await open.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var afterRevocation = Seen();
        Assert.True(afterRevocation.Contains("write failed: Operation not permitted", StringComparison.Ordinal)
            && afterRevocation.Contains("read failed: Operation not permitted", StringComparison.Ordinal), afterRevocation);
        var revoked = await Tool.RunAsync("qemu-io", Qemu(writerDir, "a", "write -P 0x05 0 4k"));
        Assert.DoesNotContain("wrote", revoked.Stdout, StringComparison.Ordinal);
        Assert.All(await cluster.ReadAsync("a", 0, 2), b => Assert.Equal(0x5a, b));
        Assert.All(await cluster.ReadAsync("a", 4, 1), b => Assert.Equal(0x5a, b));
    }

    [Fact]
    public async Task with_neither_client_certificates_nor_anonymous_access_configured_nbd_serves_nothing_and_says_what_to_set()
    {
        // The product's default: Controller__NbdAnonymous unset (false), no client CA.
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__NbdAnonymous"] = "false" });
        await cluster.CreateVolumeAsync("closed", 4096, 64);
        var model = new VolumeModel(4096, 64);
        model.Record(await cluster.WriteAsync("closed", 0, VolumeModel.Data(7, 2, 4096)), 7);

        var listed = JsonDocument.Parse(await Tool.CheckAsync("nbdinfo", "--list", "--json", $"nbd://127.0.0.1:{cluster.NbdPort}"));
        Assert.Empty(listed.RootElement.GetProperty("exports").EnumerateArray());
        foreach (var (refused, saysWhy) in new[]
                 {
                     (await Tool.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 0x04 0 8k", cluster.NbdUri("closed")]), true),
                     (await Tool.RunAsync("qemu-io", ["-f", "raw", "-r", "-c", "read 0 4k", cluster.NbdUri("closed")]), true),
                     (await Tool.RunAsync("qemu-io", ["-f", "raw", "-r", "-c", "read 0 4k", cluster.NbdUri("no-such-volume")]), true),
                     // libnbd prints only the error's kind ("server policy prevents NBD_OPT_GO"), not the server's text.
                     (await Tool.RunAsync("nbdinfo", ["--size", cluster.NbdUri("closed")]), false),
                 })
        {
            Assert.True(refused.ExitCode != 0 && !refused.Stdout.Contains("wrote", StringComparison.Ordinal) && !refused.Stdout.Contains("read ", StringComparison.Ordinal), refused.ToString());
            // qemu shows the server's sentence: what to configure, not just "refused".
            if (saysWhy) Assert.True(refused.Stderr.Contains("Controller__NbdAnonymous", StringComparison.Ordinal), refused.ToString());
        }
        Assert.Contains("NBD: no volume is served", cluster.Controller.Tail(1000), StringComparison.Ordinal);
        await Mirrors.AssertReadsEqualAsync(cluster, "closed", model.Expected(), 4096);
    }

    private static async Task<BlockWrite?> WriterOfAsync(TestCluster cluster, string volume, long block) => (await cluster.WritersAsync(volume, block)).LastWrite;

    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private async Task<string> CertAsync(TestCluster cluster, string keyId, string caCert, string caKey)
    {
        var dir = Path.Combine(_dir.FullName, keyId);
        var (code, output) = await TmCli.RunAsync(["key", "cert", keyId, "--ca-cert", caCert, "--ca-key", caKey, "--server-ca", cluster.TlsCertificateFile, "--out", dir]);
        Assert.True(code == 0, output);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir, "client-key.pem")));
        return dir;
    }

    /// <summary>The NBD client CA an operator would keep: its certificate and key as PEM files.</summary>
    private (string Cert, string Key) ClientCa()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=tm test NBD client CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(2));
        var cert = Path.Combine(_dir.FullName, "client-ca.pem");
        var keyFile = Path.Combine(_dir.FullName, "client-ca-key.pem");
        File.WriteAllText(cert, ca.ExportCertificatePem());
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        return (cert, keyFile);
    }
}
