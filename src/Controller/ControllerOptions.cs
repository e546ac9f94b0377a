using TaggedMirror.Hosting.Kafka;

namespace TaggedMirror.Controller;

/// <summary>Settings of one controller, bound from the <c>Controller</c> section (<c>Controller__Id</c>, …).</summary>
public sealed class ControllerOptions
{
    public const string Section = "Controller";

    /// <summary>This controller's id, unique among the controllers sharing a cluster (M2).</summary>
    public int Id { get; set; } = 1;

    /// <summary>How long a copy may wait for the log before the mirror is marked degraded.</summary>
    public TimeSpan DeliveryTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Most bytes a device may lag behind what was sent to it. New writes to a device this far behind wait.
    /// The default leaves room in the development broker's 5 MiB partition window.
    /// </summary>
    public long MaxLagBytes { get; set; } = 2 * 1024 * 1024;

    /// <summary>A write that waited this long for a lagging device goes on without it; the mirror is degraded (DRBD's pull-ahead, roughly).</summary>
    public TimeSpan LagTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long tokens may wait for a next write before an idle barrier carries them.</summary>
    public TimeSpan IdleTokenFlush { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>How long a read waits for a mirror to apply writes it has not applied yet before trying another.</summary>
    public TimeSpan ReadWaitTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a copy (resync, full-copy step) waits, with its range fenced, for a candidate source to apply its
    /// overlapping writes and catch up with its log before trying the next one. Writes to the range wait
    /// meanwhile, so it is short; a copy without a ready source is tried again later.
    /// </summary>
    public TimeSpan CopySourceWaitTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a write asked to wait for every device (<c>?wait=applied</c>) waits.</summary>
    public TimeSpan AppliedWaitTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long recording a mirror's state change may wait for PostgreSQL. A write that missed a mirror is
    /// answered only once that mirror is recorded as degraded; past this it is refused (503) instead.
    /// </summary>
    public TimeSpan StateWriteTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Volume lease duration; renewed at a third of it.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Largest write accepted in one request.</summary>
    public int MaxWriteBytes { get; set; } = 512 * 1024;

    /// <summary>How often a barrier goes to every device topic (flow 4), tokens or not.</summary>
    public TimeSpan BarrierInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Most bytes per second resyncs and full copies copy, over all the controller's volumes (md's
    /// <c>sync_speed_max</c>, DRBD's <c>c-max-rate</c>). 0: no limit.
    /// </summary>
    public long ResyncMaxBytesPerSecond { get; set; }

    /// <summary>
    /// Most copies of one volume and target a resync runs at once: a copy is a batch of small disjoint ranges (see
    /// <see cref="ResyncBatchBytes"/>) or one range longer than a repair may carry, copied step by step.
    /// </summary>
    public int ResyncParallelism { get; set; } = 4;

    /// <summary>
    /// Most bytes of one resync batch: small disjoint ranges fenced together, checked against one source, read from
    /// it in one request and repaired together (writes to those ranges wait for the whole batch). At most 16 MiB.
    /// </summary>
    public long ResyncBatchBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// Bytes of repairs (resync and full-copy copies) in flight to one device, over all volumes; one repair goes
    /// whatever its size. With <see cref="MaxLagBytes"/> it bounds what the device's log holds unapplied, which
    /// must stay inside the log's retention.
    /// </summary>
    public long RepairBytesInFlight { get; set; } = 1024 * 1024;

    /// <summary>
    /// The controller running reconciliation restarts Marten's daemon when the projection stays behind the newest
    /// event this long without moving (a wedged poller after a database outage). Above the daemon's wait for a
    /// sequence a transaction in flight reserved (3 s), which is no stall.
    /// </summary>
    public TimeSpan ReconciliationStallTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Every volume this controller owns is verified (scrubbed, with repair) when its newest verify ended this long
    /// ago, as ZFS's scheduled scrubs or md's monthly <c>check</c>; zero (the default) never starts one by itself.
    /// A restart counts as a verify that just ended. At least one second.
    /// </summary>
    public TimeSpan VerifyInterval { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// How often the controller looks for objects devices hold for no mirror (a detached mirror's, a deleted volume's)
    /// whose removal never reached the device's log, and sends it again (see <see cref="Volumes.VolumeChanges.RemoveOrphansAsync"/>).
    /// </summary>
    public TimeSpan OrphanSweepInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long the tag tables' traffic (<c>tag_recorded</c>, <c>tag_retired</c>, <c>barrier_passed</c>,
    /// <c>fence_passed</c>: four events, about 1.6 KiB, a mirrored write) stays in the event store once reconciliation
    /// has read it; older is pruned (see <see cref="Retention.EventRetention"/>). Zero prunes as soon as read.
    /// </summary>
    public TimeSpan EventRetention { get; set; } = TimeSpan.FromDays(1);

    /// <summary>
    /// How long an answered intake request id is remembered: a request carrying it again is answered with its first
    /// outcome, nothing written (docs/design.md, "Producers that publish writes"). Older ones are deleted by each pruning
    /// pass (<see cref="EventPruneInterval"/>), and a request with such an id after that is a new request.
    /// </summary>
    public TimeSpan IntakeRequestRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// How often the event store (<see cref="EventRetention"/>) and the intake's answered request ids
    /// (<see cref="IntakeRequestRetention"/>) are pruned; zero: never, both are kept forever.
    /// </summary>
    public TimeSpan EventPruneInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Most bytes per second a scheduled verify reads from each volume's mirrors (0: no limit).</summary>
    public long VerifyMaxBytesPerSecond { get; set; }

    /// <summary>
    /// Reconciliation's decisions (set-based statements over every unsettled tag) run at most this often: after a
    /// batch of the daemon when the last ran this long ago, else this long after the last, from the controller's
    /// decision loop. Under writes the daemon commits a batch every few tens of milliseconds, and deciding after each
    /// was most of what the controller asked of PostgreSQL. Zero decides after every batch. At most 5 s.
    /// </summary>
    public TimeSpan DecideInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Entries matched on every mirror but still live this long are retired by reconciliation (their tokens were lost).</summary>
    public TimeSpan RetireMatchedAfter { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Most blocks copied per step of a full copy, each step under its own fence. A cap: a step never carries more
    /// data than one device-topic message may (see <see cref="FullCopyStepBlocks"/>).
    /// </summary>
    public int FullCopyChunkBlocks { get; set; } = 256;

    /// <summary>
    /// Where the NBD server listens (<c>address:port</c>); empty: no NBD. Loopback by default, like the HTTP API's.
    /// Who may use which volume there: <see cref="NbdClientCaFile"/>, or <see cref="NbdAnonymous"/>; with neither,
    /// the server answers but serves no volume.
    /// </summary>
    public string NbdListen { get; set; } = "127.0.0.1:10809";

    /// <summary>
    /// The NBD server's limits (largest payload, requests and bytes in flight per connection, handshake time) and its
    /// TLS mode (<c>Controller__Nbd__Tls</c>: Auto, Off, Allow, Require).
    /// </summary>
    public Nbd.Server.NbdServerOptions Nbd { get; set; } = new();

    /// <summary>
    /// The NBD server's TLS certificate and key (PEM files); empty: the HTTPS API's
    /// (<c>Kestrel__Certificates__Default__Path</c> and <c>KeyPath</c>), if any.
    /// </summary>
    public string NbdCertificateFile { get; set; } = "";

    /// <summary>
    /// PEM file of the certificate authorities that sign NBD clients' certificates; set, a client must upgrade to TLS
    /// with a certificate one of them signed, whose subject CN is a live API key's id, and gets what that key may do.
    /// Empty: see <see cref="NbdAnonymous"/>.
    /// </summary>
    public string NbdClientCaFile { get; set; } = "";

    /// <summary>
    /// Serves every volume, read and write, to NBD clients that are not identified (writes recorded as
    /// <c>nbd:&lt;address&gt;</c>): for a port only trusted hosts reach (the local stack and the tests set it on
    /// loopback). Off by default: without it and without <see cref="NbdClientCaFile"/>, every export is refused with
    /// a sentence saying which of the two to set.
    /// </summary>
    public bool NbdAnonymous { get; set; }

    /// <summary>The private key of <see cref="NbdCertificateFile"/> (PEM); empty: in the certificate's file, or the HTTPS API's key.</summary>
    public string NbdCertificateKeyFile { get; set; } = "";

    /// <summary>
    /// Loads the NBD server's certificate: <see cref="NbdCertificateFile"/>, else the HTTPS API's from
    /// <paramref name="configuration"/>; none when neither is set. A file that does not load is an error at start.
    /// </summary>
    public void LoadNbdCertificate(IConfiguration configuration)
    {
        var cert = NbdCertificateFile;
        var key = NbdCertificateKeyFile;
        if (string.IsNullOrWhiteSpace(cert))
        {
            cert = configuration["Kestrel:Certificates:Default:Path"] ?? "";
            key = configuration["Kestrel:Certificates:Default:KeyPath"] ?? "";
        }
        if (!string.IsNullOrWhiteSpace(NbdClientCaFile))
        {
            var roots = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
            try
            {
                roots.ImportFromPemFile(NbdClientCaFile);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
            {
                throw new ArgumentException($"Controller:NbdClientCaFile {NbdClientCaFile} cannot be read as PEM certificates: {ex.Message}", ex);
            }
            if (roots.Count == 0) throw new ArgumentException($"Controller:NbdClientCaFile {NbdClientCaFile} holds no PEM certificate");
            Nbd.ClientCertificateAuthorities = roots;
        }
        if (string.IsNullOrWhiteSpace(cert)) return;
        try
        {
            Nbd.Certificate = string.IsNullOrWhiteSpace(key)
                ? System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(cert)
                : System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(cert, key);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            throw new ArgumentException($"the NBD server's certificate {cert} (key {(string.IsNullOrWhiteSpace(key) ? "in the same file" : key)}) cannot be loaded: {ex.Message}", ex);
        }
    }

    /// <summary>The write intake: producers that publish writes to Kafka (see docs/design.md, "Producers that publish writes").</summary>
    public Intake.IntakeOptions Intake { get; set; } = new();

    /// <summary>Fault hooks for tests: configuration, never code edits. Off by default.</summary>
    public FaultOptions Faults { get; set; } = new();

    /// <summary>
    /// <c>message.max.bytes</c> of the device-topic producers: the largest write plus room for the header, tokens
    /// and trace context. Every transaction the controller sends, a repair included, must fit it.
    /// </summary>
    public int DeviceMessageMaxBytes() => KafkaSettings.DeviceMessageMaxBytes(MaxWriteBytes);

    /// <summary>
    /// Blocks per full-copy step for a volume of <paramref name="blockSize"/>-byte blocks: at most
    /// <see cref="FullCopyChunkBlocks"/>, and at most the data one message carries. (256 blocks of 4 KiB were
    /// 1 MiB against a 768 KiB message: every step was refused, the target degraded and the copy began again,
    /// forever.) At least one block, which always fits: <see cref="MaxWriteBytes"/> is at least the largest block.
    /// </summary>
    public int FullCopyStepBlocks(int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        return Math.Max(1, Math.Min(FullCopyChunkBlocks, KafkaSettings.MaxDataBytes(DeviceMessageMaxBytes()) / blockSize));
    }

    /// <summary>
    /// Where the operator key the controller creates at its first start is written (readable by this user only), and
    /// kept while it is a live operator key of the cluster; empty: <c>~/.config/taggedmirror/operator.key</c>, where the
    /// CLI looks by default.
    /// </summary>
    public string OperatorKeyFile { get; set; } = "";

    /// <summary>The operator key file in effect.</summary>
    public string OperatorKeyPath => string.IsNullOrWhiteSpace(OperatorKeyFile) ? Contracts.Api.AccessHeaders.DefaultKeyFile : OperatorKeyFile;

    /// <summary>Refused requests (no key, a wrong or revoked one) a source address may make in 10 seconds before every request of it is refused with 429 for the rest of them.</summary>
    public int AccessFailureLimit { get; set; } = 50;

    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(AccessFailureLimit, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(Id, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxLagBytes, 64 * 1024);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxWriteBytes, Contracts.BlockSizes.Max);
        // A larger write would make messages a Kafka broker with default limits refuses: every copy would fail.
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxWriteBytes, KafkaSettings.MaxDataBytes(KafkaSettings.BrokerMessageMaxBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(FullCopyChunkBlocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(ReconciliationStallTimeout, TimeSpan.FromSeconds(5));
        ArgumentOutOfRangeException.ThrowIfNegative(ResyncMaxBytesPerSecond);
        ArgumentOutOfRangeException.ThrowIfLessThan(ResyncParallelism, 1);
        // A batch is read from its source in one request, which an agent answers up to RangeRead.MaxBytes: a larger
        // batch would be refused every time, and its ranges never copied.
        if (ResyncBatchBytes < 1 || ResyncBatchBytes > Contracts.Api.RangeRead.MaxBytes)
            throw new ArgumentException($"Controller:ResyncBatchBytes {ResyncBatchBytes} must be between 1 and {Contracts.Api.RangeRead.MaxBytes} (what one read from a device may carry)");
        ArgumentOutOfRangeException.ThrowIfNegative(RepairBytesInFlight);
        if (VerifyInterval != TimeSpan.Zero) ArgumentOutOfRangeException.ThrowIfLessThan(VerifyInterval, TimeSpan.FromSeconds(1));
        ArgumentOutOfRangeException.ThrowIfNegative(VerifyMaxBytesPerSecond);
        if (EventRetention < TimeSpan.Zero || EventRetention > TimeSpan.FromDays(36500))
            throw new ArgumentException($"Controller:EventRetention {EventRetention} must be between 0 and 100 years (to keep every event, set Controller:EventPruneInterval to 0)");
        if (IntakeRequestRetention < TimeSpan.Zero || IntakeRequestRetention > TimeSpan.FromDays(36500))
            throw new ArgumentException($"Controller:IntakeRequestRetention {IntakeRequestRetention} must be between 0 and 100 years (to keep every request id, set Controller:EventPruneInterval to 0)");
        if (EventPruneInterval != TimeSpan.Zero && (EventPruneInterval < TimeSpan.FromSeconds(1) || EventPruneInterval > TimeSpan.FromDays(1)))
            throw new ArgumentException($"Controller:EventPruneInterval {EventPruneInterval} must be 0 (never prune) or between one second and one day");
        if (DecideInterval < TimeSpan.Zero || DecideInterval > TimeSpan.FromSeconds(5))
            throw new ArgumentException($"Controller:DecideInterval {DecideInterval} must be between 0 and 5 seconds");
        if (RetireMatchedAfter < TimeSpan.Zero || RetireMatchedAfter > TimeSpan.FromDays(1))
            throw new ArgumentException($"Controller:RetireMatchedAfter {RetireMatchedAfter} must be between 0 and one day");
        Intake.Validate();
        // Task.Delay and Thread.Sleep throw for a negative time or one past about 24 days: the stalled write would fail
        // instead of stalling.
        if (Faults.StallFor < TimeSpan.Zero || Faults.StallFor > TimeSpan.FromDays(1))
            throw new ArgumentException($"Controller:Faults:StallFor {Faults.StallFor} must be between 0 and one day");
        if (!string.IsNullOrWhiteSpace(NbdListen) && !System.Net.IPEndPoint.TryParse(NbdListen, out _))
            throw new ArgumentException($"Controller:NbdListen '{NbdListen}' is not address:port (e.g. 0.0.0.0:10809), nor empty to switch NBD off");
        Nbd.Validate();
        if (NbdAnonymous && !string.IsNullOrWhiteSpace(NbdClientCaFile))
            throw new ArgumentException("Controller:NbdAnonymous serves every volume to clients that are not identified, and Controller:NbdClientCaFile asks every client for a certificate: set one of the two");
        if (Nbd.ClientCertificateAuthorities is not null && Nbd.EffectiveTls == TaggedMirror.Nbd.Server.NbdTlsMode.Off)
            throw new ArgumentException("Controller:NbdClientCaFile asks NBD clients for certificates, but NBD has no TLS: give it a certificate (Controller:NbdCertificateFile or the HTTPS one) and leave Controller:Nbd:Tls on Auto, Allow or Require");
    }
}

/// <summary>Failures the controller can be told to cause, so tests inject them for real.</summary>
public sealed class FaultOptions
{
    /// <summary>When &gt; 0: after the first copy of the first write (not a repair) with this sequence or later is in the log, the controller kills itself (SIGKILL).</summary>
    public long StopAfterFirstCopyOfWrite { get; set; }

    /// <summary>
    /// When &gt;= 0: a write (not an append or repair) starting at this block stalls for <see cref="StallFor"/> after its
    /// lease check, before its tag is taken and its copies are sent, as a process paused by the scheduler, a
    /// long garbage collection or a suspended VM would. -1 (the default): never.
    /// </summary>
    public long StallWriteAtBlock { get; set; } = -1;

    /// <summary>
    /// When &gt;= 0: a write (not an append or repair) starting at this block stalls for <see cref="StallFor"/> right after
    /// its first copy is handed to the log, under the volume's lock, as a thread descheduled there would: that device
    /// may apply and acknowledge the copy before the next one is sent. -1 (the default): never.
    /// </summary>
    public long StallAfterSendAtBlock { get; set; } = -1;

    /// <summary>How long the write chosen by <see cref="StallWriteAtBlock"/> or <see cref="StallAfterSendAtBlock"/> stalls.</summary>
    public TimeSpan StallFor { get; set; } = TimeSpan.FromSeconds(10);
}
