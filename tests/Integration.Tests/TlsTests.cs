using System.Net;
using System.Security.Authentication;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// TLS on the controller's API (issue #12): a certificate from configuration (ASP.NET Core's
/// <c>Kestrel__Certificates__Default__Path</c>/<c>KeyPath</c>), the whole product working through it, clients that do
/// not trust it refused before a key is sent, and the CLI trusting a private certificate with <c>TM_CA_FILE</c>.
/// </summary>
public sealed class TlsTests
{
    [Fact]
    public async Task the_api_over_https_serves_writes_and_reads_and_untrusting_or_plain_clients_get_nothing()
    {
        await using var cluster = await TestCluster.StartAsync(tls: true);
        Assert.StartsWith("https://", cluster.Controller.Url, StringComparison.Ordinal);
        await cluster.CreateVolumeAsync("sealed", 4096, 64);
        var data = VolumeModel.Data(17, 2, 4096);
        await cluster.WriteAsync("sealed", 3, data, wait: "applied");
        Assert.Equal(data, await cluster.ReadAsync("sealed", 3, 2));
        await cluster.WaitConvergedAsync("sealed");

        // A client that trusts only the system's roots never gets to send its key.
        using (var untrusting = new HttpClient())
        {
            untrusting.DefaultRequestHeaders.Authorization = new("Bearer", cluster.OperatorKey);
            var ex = await Assert.ThrowsAsync<HttpRequestException>(() => untrusting.GetAsync(cluster.Controller.Url + "/volumes"));
            Assert.IsType<AuthenticationException>(ex.InnerException);
        }
        // Plain HTTP to the TLS port gets no answer.
        using (var plain = new HttpClient())
        {
            var url = cluster.Controller.Url.Replace("https://", "http://", StringComparison.Ordinal) + "/health/live";
            HttpStatusCode? status = null;
            try
            {
                status = (await plain.GetAsync(url)).StatusCode;
            }
            catch (HttpRequestException)
            {
            }
            Assert.True(status is null or HttpStatusCode.BadRequest, $"plain HTTP on the TLS port answered {status}");
        }

        // The CLI: refused with the way out when it does not trust the certificate, served when TM_CA_FILE names it.
        var key = new Dictionary<string, string> { [AccessHeaders.KeyEnvironment] = cluster.OperatorKey };
        var (code, output) = await TmCli.RunAsync(["status", "--controller", cluster.Controller.Url], key);
        Assert.True(code != 0 && output.Contains(AccessHeaders.CaFileEnvironment, StringComparison.Ordinal), $"{code}: {output}");
        (code, output) = await TmCli.RunAsync(["status", "--controller", cluster.Controller.Url],
            new Dictionary<string, string>(key) { [AccessHeaders.CaFileEnvironment] = cluster.TlsCertificateFile });
        Assert.True(code == 0 && output.Contains("sealed", StringComparison.Ordinal), $"{code}: {output}");
        // A file that holds no certificate is said so, not taken as "trust nothing" or "trust everything".
        var notPem = Path.Combine(cluster.Directory, "not.pem");
        await File.WriteAllTextAsync(notPem, "hello");
        (code, output) = await TmCli.RunAsync(["status", "--controller", cluster.Controller.Url],
            new Dictionary<string, string>(key) { [AccessHeaders.CaFileEnvironment] = notPem });
        // (Spectre wraps the sentence at 80 columns when not on a terminal.)
        Assert.True(code != 0 && string.Join(' ', output.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)).Contains("holds no PEM certificate", StringComparison.Ordinal),
            $"{code}: {output}");
    }
}
