using Microsoft.Extensions.Configuration;
namespace TaggedMirror.Controller.Tests;

/// <summary>Settings a controller must refuse at start rather than run with.</summary>
public sealed class ControllerOptionsTests
{
    [Theory]
    [InlineData(0L)]
    [InlineData(-1L)]
    [InlineData(long.MinValue)]
    [InlineData(16L * 1024 * 1024 + 1)]
    [InlineData(long.MaxValue)]
    public void a_resync_batch_no_device_read_can_carry_is_refused(long bytes)
    {
        var options = new ControllerOptions { ResyncBatchBytes = bytes };
        var ex = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.Contains("ResyncBatchBytes", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(1024L * 1024)]
    [InlineData(16L * 1024 * 1024)]
    public void a_resync_batch_within_one_device_read_is_taken(long bytes)
    {
        new ControllerOptions { ResyncBatchBytes = bytes }.Validate();
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(5001)]
    [InlineData(int.MaxValue)]
    public void a_decision_interval_below_zero_or_above_five_seconds_is_refused(int milliseconds)
    {
        var options = new ControllerOptions { DecideInterval = TimeSpan.FromMilliseconds(milliseconds) };
        var ex = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.Contains("DecideInterval", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(200)]
    [InlineData(5000)]
    public void a_decision_interval_from_zero_to_five_seconds_is_taken(int milliseconds)
    {
        new ControllerOptions { DecideInterval = TimeSpan.FromMilliseconds(milliseconds) }.Validate();
    }

    [Theory]
    [InlineData(-1L, 60_000L, "EventRetention")]
    [InlineData(long.MinValue / TimeSpan.TicksPerMillisecond, 60_000L, "EventRetention")]
    [InlineData(long.MaxValue / TimeSpan.TicksPerMillisecond, 60_000L, "EventRetention")]
    [InlineData(0L, -1L, "EventPruneInterval")]
    [InlineData(0L, 999L, "EventPruneInterval")]
    [InlineData(0L, 86_400_001L, "EventPruneInterval")]
    public void an_event_retention_below_zero_or_a_prune_interval_out_of_its_range_is_refused(long retentionMs, long intervalMs, string named)
    {
        var options = new ControllerOptions { EventRetention = TimeSpan.FromMilliseconds(retentionMs), EventPruneInterval = TimeSpan.FromMilliseconds(intervalMs) };
        var ex = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.Contains(named, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData(long.MinValue / TimeSpan.TicksPerMillisecond)]
    [InlineData(long.MaxValue / TimeSpan.TicksPerMillisecond)]
    public void an_intake_request_retention_below_zero_or_above_a_century_is_refused(long retentionMs)
    {
        var options = new ControllerOptions { IntakeRequestRetention = TimeSpan.FromMilliseconds(retentionMs) };
        var ex = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.Contains("IntakeRequestRetention", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(7L * 86_400_000)]
    [InlineData(36_500L * 86_400_000)]
    public void an_intake_request_retention_from_zero_to_a_century_is_taken(long retentionMs)
    {
        new ControllerOptions { IntakeRequestRetention = TimeSpan.FromMilliseconds(retentionMs) }.Validate();
    }

    [Theory]
    [InlineData(0L, 0L)]        // never pruned
    [InlineData(0L, 1_000L)]    // pruned as soon as reconciliation read them
    [InlineData(86_400_000L, 60_000L)]
    [InlineData(86_400_000L * 3650, 86_400_000L)]
    public void an_event_retention_from_zero_and_a_prune_interval_of_zero_or_a_second_to_a_day_are_taken(long retentionMs, long intervalMs)
    {
        new ControllerOptions { EventRetention = TimeSpan.FromMilliseconds(retentionMs), EventPruneInterval = TimeSpan.FromMilliseconds(intervalMs) }.Validate();
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(86_400_001)]
    [InlineData(long.MaxValue / TimeSpan.TicksPerMillisecond)]
    public void a_fault_stall_below_zero_or_above_a_day_is_refused(long milliseconds)
    {
        var options = new ControllerOptions { Faults = { StallFor = TimeSpan.FromMilliseconds(milliseconds) } };
        var ex = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.Contains("StallFor", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(10_000)]
    [InlineData(86_400_000)]
    public void a_fault_stall_from_zero_to_a_day_is_taken(long milliseconds)
    {
        new ControllerOptions { Faults = { StallFor = TimeSpan.FromMilliseconds(milliseconds) } }.Validate();
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(86_400_001)]
    [InlineData(long.MaxValue / TimeSpan.TicksPerMillisecond)]
    public void a_retire_grace_period_below_zero_or_above_a_day_is_refused(long milliseconds)
    {
        var options = new ControllerOptions { RetireMatchedAfter = TimeSpan.FromMilliseconds(milliseconds) };
        var ex = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.Contains("RetireMatchedAfter", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void nbd_is_closed_by_default_and_anonymous_access_and_client_certificates_cannot_both_be_asked_for()
    {
        var defaults = new ControllerOptions();
        Assert.False(defaults.NbdAnonymous);
        Assert.Equal("", defaults.NbdClientCaFile);
        new ControllerOptions { NbdAnonymous = true }.Validate();
        var both = new ControllerOptions { NbdAnonymous = true, NbdClientCaFile = "/etc/tm/nbd-clients.pem" };
        var ex = Assert.ThrowsAny<ArgumentException>(both.Validate);
        Assert.Contains("NbdAnonymous", ex.Message, StringComparison.Ordinal);
        Assert.Contains("NbdClientCaFile", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void the_nbd_certificate_comes_from_its_own_setting_else_the_https_one_and_one_that_does_not_load_is_named()
    {
        var dir = Directory.CreateTempSubdirectory("tm-cert-");
        try
        {
            using var key = System.Security.Cryptography.ECDsa.Create();
            using var cert = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=t", key, System.Security.Cryptography.HashAlgorithmName.SHA256)
                .CreateSelfSigned(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));
            var certFile = Path.Combine(dir.FullName, "c.pem");
            var keyFile = Path.Combine(dir.FullName, "k.pem");
            File.WriteAllText(certFile, cert.ExportCertificatePem());
            File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
            var https = new Microsoft.Extensions.Configuration.ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Kestrel:Certificates:Default:Path"] = certFile,
                ["Kestrel:Certificates:Default:KeyPath"] = keyFile,
            }).Build();
            var none = new Microsoft.Extensions.Configuration.ConfigurationBuilder().Build();

            var fromHttps = new ControllerOptions();
            fromHttps.LoadNbdCertificate(https);
            Assert.Equal(cert.Thumbprint, fromHttps.Nbd.Certificate?.Thumbprint);
            Assert.Equal(Nbd.Server.NbdTlsMode.Allow, fromHttps.Nbd.EffectiveTls);

            var without = new ControllerOptions();
            without.LoadNbdCertificate(none);
            Assert.Null(without.Nbd.Certificate);
            Assert.Equal(Nbd.Server.NbdTlsMode.Off, without.Nbd.EffectiveTls);
            without.Nbd.Tls = Nbd.Server.NbdTlsMode.Require;
            Assert.ThrowsAny<ArgumentException>(without.Validate);

            var missing = new ControllerOptions { NbdCertificateFile = Path.Combine(dir.FullName, "nope.pem") };
            var ex = Assert.ThrowsAny<ArgumentException>(() => missing.LoadNbdCertificate(https));
            Assert.Contains("nope.pem", ex.Message, StringComparison.Ordinal);
            var keyless = new ControllerOptions { NbdCertificateFile = certFile };
            Assert.ThrowsAny<ArgumentException>(() => { keyless.LoadNbdCertificate(none); });
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
