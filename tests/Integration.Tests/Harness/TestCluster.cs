using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Api;
using TaggedMirror.DevKafka;

namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>
/// A whole TaggedMirror installation for one test: the librdkafka mock cluster (three brokers, in this
/// process), its own PostgreSQL schema and bus cluster name (so tests never see each other), one
/// controller process and one agent process per device.
/// </summary>
internal sealed class TestCluster : IAsyncDisposable
{
    public static readonly string Postgres =
        System.Environment.GetEnvironmentVariable("TM_PG") ?? "Host=127.0.0.1;Username=tm;Password=tm;Database=tm";

    private readonly Dictionary<string, string> _controllerSettings;
    private readonly Dictionary<string, ServiceProcess> _agents = new(StringComparer.Ordinal);
    private readonly Func<string, IReadOnlyDictionary<string, string>>? _processEnvironment;

    private TestCluster(string[] devices, Dictionary<string, string>? controllerSettings, Func<string, IReadOnlyDictionary<string, string>>? processEnvironment)
    {
        _processEnvironment = processEnvironment;
        Id = "t" + Guid.NewGuid().ToString("N")[..12];
        Directory = System.IO.Directory.CreateTempSubdirectory("tm-it-" + Id + "-").FullName;
        Kafka = MockKafkaCluster.Start(3);
        // Each device's partition is led by its own broker, so taking one broker down makes one device's log
        // undeliverable and leaves the others alone.
        for (var i = 0; i < devices.Length; i++)
        {
            Kafka.CreateTopic("tm.device." + devices[i], 1);
            Kafka.SetPartitionLeader("tm.device." + devices[i], 0, BrokerOf(i));
        }
        DataSource = NpgsqlDataSource.Create(Postgres);
        _controllerSettings = new Dictionary<string, string>(controllerSettings ?? [], StringComparer.Ordinal);
        // NBD serves nothing until told whom to (issue #12): the tests' loopback port serves every volume to every
        // client unless a test identifies clients by certificate or says otherwise.
        if (!_controllerSettings.ContainsKey("Controller__NbdClientCaFile")) _controllerSettings.TryAdd("Controller__NbdAnonymous", "true");
        Devices = devices;
        // Over https the cluster's client trusts exactly the controller's certificate (TlsCertificate), no other.
        Http = new HttpClient(new SocketsHttpHandler
        {
            SslOptions = { RemoteCertificateValidationCallback = (_, presented, _, _) => presented is not null && TlsCertificate is not null && presented.GetRawCertData().AsSpan().SequenceEqual(TlsCertificate.RawData) },
        })
        { Timeout = TimeSpan.FromSeconds(60) };
    }

    /// <summary>The controller's self-signed certificate when the cluster was started with <c>tls</c> (PEM in <see cref="TlsCertificateFile"/>).</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2? TlsCertificate { get; private set; }

    public string TlsCertificateFile => Path.Combine(Directory, "tls-cert.pem");

    /// <summary>A self-signed certificate for 127.0.0.1 and localhost, its PEM files in the cluster's directory.</summary>
    private Dictionary<string, string> MakeTlsCertificate()
    {
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=tm-test", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        var names = new System.Security.Cryptography.X509Certificates.SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        // Its own CA, as openssl's self-signed certificates are (the local stack's): qemu takes a trust anchor only with these constraints.
        request.CertificateExtensions.Add(new System.Security.Cryptography.X509Certificates.X509BasicConstraintsExtension(true, false, 0, true));
        var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(TlsCertificateFile, certificate.ExportCertificatePem());
        var keyFile = Path.Combine(Directory, "tls-key.pem");
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        TlsCertificate = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(certificate.RawData);
        return new() { ["Kestrel__Certificates__Default__Path"] = TlsCertificateFile, ["Kestrel__Certificates__Default__KeyPath"] = keyFile };
    }

    public string Id { get; }

    public string Schema => Id;

    public string Directory { get; }

    public MockKafkaCluster Kafka { get; }

    public NpgsqlDataSource DataSource { get; }

    public string[] Devices { get; }

    public HttpClient Http { get; }

    public ServiceProcess Controller { get; private set; } = null!;

    public ServiceProcess Agent(string device) => _agents[device];

    /// <summary>The broker leading <paramref name="device"/>'s partition.</summary>
    public int BrokerOf(string device) => BrokerOf(Array.IndexOf(Devices, device));

    private static int BrokerOf(int deviceIndex) => deviceIndex % 3 + 1;

    /// <summary>The port the cluster's controller serves NBD on (the same across its restarts).</summary>
    public int NbdPort { get; } = Paths.FreePort();

    /// <summary>The NBD URI of <paramref name="volume"/> on the cluster's controller.</summary>
    public string NbdUri(string volume) => $"nbd://127.0.0.1:{NbdPort}/{volume}";

    public string DataDirectory(string device) => _dataDirectory?.Invoke(device) ?? Path.Combine(Directory, "data", device);

    private Func<string, string>? _dataDirectory;

    /// <summary>
    /// Starts the cluster. <paramref name="processEnvironment"/> adds variables per process, by its name
    /// (<c>controller</c>, <c>agent-d0</c>, ...): telemetry exporters, for one.
    /// </summary>
    public static async Task<TestCluster> StartAsync(
        string[]? devices = null, Dictionary<string, string>? controllerSettings = null,
        Func<string, IReadOnlyDictionary<string, string>>? processEnvironment = null, Func<string, string>? dataDirectory = null, bool tls = false)
    {
        var c = new TestCluster(devices ?? ["d0", "d1"], controllerSettings, processEnvironment) { _dataDirectory = dataDirectory };
        try
        {
            var settings = new Dictionary<string, string>(c._controllerSettings) { ["Controller__NbdListen"] = $"127.0.0.1:{c.NbdPort}" };
            if (tls) foreach (var (k, v) in c.MakeTlsCertificate()) settings[k] = v;
            c.Controller = new ServiceProcess("controller", Paths.Deployable("Controller"), $"{(tls ? "https" : "http")}://127.0.0.1:{Paths.FreePort()}", c.Directory,
                c.Environment("controller", settings));
            c.Controller.Start();
            await c.WaitReadyAsync(c.Controller, "/controller");
            foreach (var d in c.Devices)
            {
                var agent = new ServiceProcess("agent-" + d, Paths.Deployable("DeviceAgent"), $"http://127.0.0.1:{Paths.FreePort()}", c.Directory,
                    c.Environment("agent-" + d, new() { ["Agent__DeviceId"] = d, ["Agent__DataDirectory"] = c.DataDirectory(d) }));
                c._agents[d] = agent;
                agent.Start();
            }
            foreach (var d in c.Devices) await c.WaitAgentRunningAsync(d);
            return c;
        }
        catch
        {
            await c.DisposeAsync();
            throw;
        }
    }

    private Dictionary<string, string> Environment(string process, Dictionary<string, string> extra)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["TaggedMirror__Postgres"] = Postgres,
            ["TaggedMirror__Schema"] = Schema,
            ["TaggedMirror__Kafka"] = Kafka.BootstrapServers,
            ["TaggedMirror__Cluster"] = Id,
            ["Controller__OperatorKeyFile"] = OperatorKeyFile,
        };
        foreach (var (k, v) in extra) env[k] = v;
        if (_processEnvironment is not null)
            foreach (var (k, v) in _processEnvironment(process)) env[k] = v;
        return env;
    }

    public async Task RestartControllerAsync(bool kill)
    {
        if (kill) Controller.Kill(); else await Controller.StopAsync();
        await StartControllerAsync();
    }

    public async Task StartControllerAsync()
    {
        Controller.Start();
        await WaitReadyAsync(Controller, "/controller");
    }

    public async Task StartAgentAsync(string device, bool waitRunning = true)
    {
        _agents[device].Start();
        if (waitRunning) await WaitAgentRunningAsync(device);
    }

    public async Task WaitAgentRunningAsync(string device)
    {
        var agent = _agents[device];
        await WaitReadyAsync(agent, "/status");
        await Eventually.TrueAsync(async () => (await AgentStatusAsync(device)).GetProperty("running").GetBoolean(),
            TimeSpan.FromSeconds(60), () => $"agent {device} did not start consuming:\n{agent.Tail()}");
    }

    /// <summary>Where the cluster's controllers keep the operator key they create at the first start (the cluster's <see cref="Http"/> presents it).</summary>
    public string OperatorKeyFile => Path.Combine(Directory, "operator.key");

    /// <summary>The operator key (empty until the first controller has started).</summary>
    public string OperatorKey => File.Exists(OperatorKeyFile) ? File.ReadAllText(OperatorKeyFile).Trim() : "";

    private async Task WaitReadyAsync(ServiceProcess p, string path)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            if (!p.Running) throw new InvalidOperationException($"{p.Name} exited during start:\n{p.Tail()}");
            // Set once, before anything else uses the client: the key stays the same across restarts (the file's key is kept while it is live).
            if (Http.DefaultRequestHeaders.Authorization is null && OperatorKey is { Length: > 0 } key)
                Http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
            try
            {
                using var r = await Http.GetAsync(new Uri(p.Url + path));
                if (r.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{p.Name} did not answer {path}:\n{p.Tail()}");
            await Task.Delay(100);
        }
    }

    public Task<JsonElement> AgentStatusAsync(string device) => GetJsonAsync(_agents[device].Url + "/status");

    /// <summary>The volume's status as <paramref name="via"/> (by default the cluster's first controller) sees it.</summary>
    public Task<JsonElement> VolumeStatusAsync(string volume, ServiceProcess? via = null) => GetJsonAsync($"{(via ?? Controller).Url}/volumes/{volume}");

    /// <summary>A new API key, made with the operator key (<c>POST /keys</c>): its secret text and what it is.</summary>
    public async Task<CreatedKey> CreateKeyAsync(CreateKeyRequest request)
    {
        using var r = await Http.PostAsJsonAsync(new Uri(Controller.Url + "/keys"), request, JsonSerializerOptions.Web);
        Assert.True(r.StatusCode == System.Net.HttpStatusCode.Created, await r.Content.ReadAsStringAsync());
        return (await r.Content.ReadFromJsonAsync<CreatedKey>(JsonSerializerOptions.Web))!;
    }

    /// <summary>Who last wrote a block (<c>GET /volumes/{name}/blocks/{block}/writer</c>), with the operator key.</summary>
    public async Task<BlockWriters> WritersAsync(string volume, long block)
    {
        using var r = await Http.GetAsync(new Uri($"{Controller.Url}/volumes/{volume}/blocks/{block}/writer"));
        Assert.True(r.IsSuccessStatusCode, $"writer of {volume}/{block}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
        return (await r.Content.ReadFromJsonAsync<BlockWriters>(JsonSerializerOptions.Web))!;
    }

    /// <summary>Revokes a key (<c>DELETE /keys/{id}</c>).</summary>
    public async Task RevokeKeyAsync(string keyId)
    {
        using var r = await Http.DeleteAsync(new Uri($"{Controller.Url}/keys/{keyId}"));
        Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());
    }

    public Task<JsonElement> ControllerInfoAsync(ServiceProcess? via = null) => GetJsonAsync((via ?? Controller).Url + "/controller");

    private async Task<JsonElement> GetJsonAsync(string url)
    {
        using var r = await Http.GetAsync(new Uri(url));
        r.EnsureSuccessStatusCode();
        return (await r.Content.ReadFromJsonAsync<JsonElement>());
    }

    /// <summary>Creates a volume mirrored on <paramref name="mirrors"/> (default: every device of the cluster).</summary>
    public async Task CreateVolumeAsync(string name, int blockSize, long blocks, int? minMirrors = null, string[]? mirrors = null)
    {
        using var r = await Http.PostAsJsonAsync(new Uri(Controller.Url + "/volumes"), new { name, blockSize, blocks, mirrors = mirrors ?? Devices, minMirrors });
        Assert.True(r.IsSuccessStatusCode, $"create volume: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
    }

    public Task<HttpResponseMessage> PutBlocksAsync(string volume, long firstBlock, byte[] data, string? wait = null, ServiceProcess? via = null)
    {
        var content = new ByteArrayContent(data);
        content.Headers.ContentType = new("application/octet-stream");
        var q = wait is null ? "" : "?wait=" + wait;
        return Http.PutAsync(new Uri($"{(via ?? Controller).Url}/volumes/{volume}/blocks/{firstBlock}{q}"), content);
    }

    public Task<HttpResponseMessage> AppendAsync(string volume, byte[] data, ServiceProcess? via = null)
    {
        var content = new ByteArrayContent(data);
        content.Headers.ContentType = new("application/octet-stream");
        return Http.PostAsync(new Uri($"{(via ?? Controller).Url}/volumes/{volume}/append"), content);
    }

    /// <summary>Writes and returns the answer; fails the test on a refusal.</summary>
    public async Task<WriteResult> WriteAsync(string volume, long firstBlock, byte[] data, string? wait = null, ServiceProcess? via = null)
    {
        using var r = await PutBlocksAsync(volume, firstBlock, data, wait, via);
        var body = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"write [{firstBlock}+{data.Length}B]: {(int)r.StatusCode} {body}");
        return JsonSerializer.Deserialize<WriteResult>(body, JsonSerializerOptions.Web)!;
    }

    public async Task<byte[]> ReadAsync(string volume, long firstBlock, int count, ServiceProcess? via = null)
    {
        using var r = await Http.GetAsync(new Uri($"{(via ?? Controller).Url}/volumes/{volume}/blocks/{firstBlock}?count={count}"));
        var body = await r.Content.ReadAsByteArrayAsync();
        Assert.True(r.IsSuccessStatusCode, $"read [{firstBlock}+{count}]: {(int)r.StatusCode} {System.Text.Encoding.UTF8.GetString(body)}");
        return body;
    }

    public async Task<long> LiveEntriesAsync(string? device = null)
    {
        await using var cmd = DataSource.CreateCommand(
            $"SELECT count(*) FROM {Schema}.tag_table WHERE @d::text IS NULL OR device_id = @d::text");
        cmd.Parameters.AddWithValue("d", (object?)device ?? DBNull.Value);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    public async Task<long> ScalarAsync(string sql, params (string Name, object Value)[] parameters)
    {
        await using var cmd = DataSource.CreateCommand(sql.Replace("{schema}", Schema, StringComparison.Ordinal));
        foreach (var (n, v) in parameters) cmd.Parameters.AddWithValue(n, v);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Waits until every write the controller sent has been applied wherever it was sent, and every device
    /// has retired every entry (the tokens came back).
    /// </summary>
    public async Task WaitTagTablesEmptyAsync(TimeSpan? timeout = null)
    {
        foreach (var c in new[] { Controller }.Concat(_otherControllers).Where(c => c.Running))
        {
            await Eventually.TrueAsync(async () => (await ControllerInfoAsync(c)).GetProperty("inflight").GetInt32() == 0,
                timeout ?? TimeSpan.FromSeconds(60), () => $"writes still in flight on {c.Name}\n{Logs()}");
        }
        await Eventually.TrueAsync(async () => await LiveEntriesAsync() == 0, timeout ?? TimeSpan.FromSeconds(60),
            () => $"tag tables did not drain: {LiveEntriesAsync().GetAwaiter().GetResult()} live entries\n{Logs()}");
    }

    /// <summary>
    /// Waits until no device marks an object as needing a full copy: a device clears its own mark once it sees the
    /// controller's record of a full copy covering its latest truncation, at its next re-acknowledgement.
    /// </summary>
    public Task WaitFullCopyMarksClearedAsync() => Eventually.TrueAsync(
        async () => await ScalarAsync("SELECT count(*) FROM {schema}.device_objects WHERE needs_full_copy") == 0,
        TimeSpan.FromSeconds(40), () => "a device still marks an object as needing a full copy\n" + Logs());

    /// <summary>
    /// Waits until the volume is whole again: every mirror in sync, nothing in flight, and the volume's
    /// tag-table entries all retired on every device.
    /// </summary>
    public async Task WaitConvergedAsync(string volume, TimeSpan? timeout = null, ServiceProcess? via = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(90);
        await Eventually.TrueAsync(async () =>
            {
                var status = await VolumeStatusAsync(volume, via);
                return status.GetProperty("inflightWrites").GetInt32() == 0
                    && status.GetProperty("mirrors").EnumerateArray().All(m =>
                        m.GetProperty("state").GetString() == "InSync" && m.GetProperty("liveTagEntries").GetInt64() == 0);
            },
            limit, () => $"volume {volume} did not converge: {VolumeStatusAsync(volume, via).GetAwaiter().GetResult()}\n{Logs()}");
    }

    /// <summary>Restarts PostgreSQL under the running stack; the test's own pooled connections are dropped.</summary>
    public async Task RestartPostgresAsync()
    {
        await PostgresServer.RestartAsync();
        DataSource.Clear();
    }

    /// <summary>Waits until the controller answers status five times in a row (after a PostgreSQL restart).</summary>
    public async Task WaitApiHealthyAsync(string volume, ServiceProcess? via = null)
    {
        var ok = 0;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (ok < 5 && DateTime.UtcNow < deadline)
        {
            using var r = await Http.GetAsync(new Uri($"{(via ?? Controller).Url}/volumes/{volume}"));
            ok = r.IsSuccessStatusCode ? ok + 1 : 0;
            await Task.Delay(50);
        }
    }

    public async Task<string> MirrorStateAsync(string volume, string device)
    {
        var mirrors = (await VolumeStatusAsync(volume)).GetProperty("mirrors");
        return mirrors.EnumerateArray().First(m => m.GetProperty("deviceId").GetString() == device).GetProperty("state").GetString()!;
    }

    public async Task<List<Resync>> ResyncsAsync(string volume)
    {
        var list = new List<Resync>();
        await using var cmd = DataSource.CreateCommand(
            $"SELECT tag, source, target, first_block, block_count, extension, coalesce(array_to_string(tags, ','), tag, '') FROM {Schema}.resyncs WHERE volume = @v ORDER BY id");
        cmd.Parameters.AddWithValue("v", volume);
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync())
            list.Add(new Resync(r.IsDBNull(0) ? null : r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3), r.GetInt32(4), r.GetBoolean(5), r.GetString(6)));
        return list;
    }

    /// <summary>Tags of <paramref name="volume"/>'s writes (not repairs) that <paramref name="device"/> recorded.</summary>
    public async Task<HashSet<string>> RecordedTagsAsync(string device, string volume)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        await using var cmd = DataSource.CreateCommand($"""
            SELECT concat_ws(':', data->'tag'->>'controllerId', data->'tag'->>'epoch', data->'tag'->>'seq')
            FROM {Schema}.mt_events WHERE stream_id = @s AND type = 'tag_recorded' AND data->>'kind' <> 'Repair' AND data->>'objectId' = @o
            """);
        cmd.Parameters.AddWithValue("s", "tagtable-" + device);
        cmd.Parameters.AddWithValue("o", volume + "." + device);
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) set.Add(r.GetString(0));
        return set;
    }

    public byte[] ObjectFile(string device, string volume)
    {
        var path = Path.Combine(DataDirectory(device), $"{volume}.{device}.obj");
        return File.Exists(path) ? File.ReadAllBytes(path) : [];
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var a in _agents.Values) await a.DisposeAsync();
        foreach (var c in _otherControllers) await c.DisposeAsync();
        if (Controller is not null) await Controller.DisposeAsync();
        Kafka.Dispose();
        try
        {
            await Bus.DeleteClusterAsync(Id);
        }
        catch (Exception ex) when (ex is InvalidOperationException or RabbitMQ.Client.Exceptions.RabbitMQClientException or IOException)
        {
            // A broker the test stopped and could not restart is the test's own failure; do not hide it behind this one.
            await Console.Error.WriteLineAsync($"test cluster {Id}: could not delete its queues and exchanges: {ex.Message}");
        }
        var keep = System.Environment.GetEnvironmentVariable("TM_KEEP_TEST_DIRS") is not null;
        try
        {
            if (keep) throw new OperationCanceledException(); // keep the schema for a look afterwards
            await using var cmd = DataSource.CreateCommand($"DROP SCHEMA IF EXISTS {Schema} CASCADE");
            await cmd.ExecuteNonQueryAsync();
        }
        catch (Exception ex) when (ex is NpgsqlException or OperationCanceledException)
        {
        }
        await DataSource.DisposeAsync();
        Http.Dispose();
        if (System.Environment.GetEnvironmentVariable("TM_KEEP_TEST_DIRS") is null)
        {
            try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
        }
    }

    private readonly List<ServiceProcess> _otherControllers = [];

    /// <summary>
    /// Another controller process on the same cluster (not started): <paramref name="settings"/> are added to the
    /// cluster's own, so <c>Controller__Id</c> picks its id.
    /// </summary>
    public ServiceProcess NewController(string name, Dictionary<string, string> settings)
    {
        var all = new Dictionary<string, string>(_controllerSettings, StringComparer.Ordinal) { ["Controller__NbdListen"] = $"127.0.0.1:{Paths.FreePort()}" };
        foreach (var (k, v) in settings) all[k] = v;
        var p = new ServiceProcess(name, Paths.Deployable("Controller"), $"http://127.0.0.1:{Paths.FreePort()}", Directory, Environment(name, all));
        _otherControllers.Add(p);
        return p;
    }

    /// <summary>Starts a process made by <see cref="NewController"/> and waits until it answers.</summary>
    public async Task StartControllerAsync(ServiceProcess controller)
    {
        controller.Start();
        await WaitReadyAsync(controller, "/controller");
    }

    /// <summary>Logs of every process, for assertion messages.</summary>
    public string Logs() => string.Join("\n", new[] { Controller }.Concat(_otherControllers).Concat(_agents.Values).Select(p => $"==== {p.Name}\n{p.Tail(30)}"));

    /// <summary>The operating-system process id of <paramref name="device"/>'s agent (from its <c>/diag/process</c>).</summary>
    public async Task<int> AgentPidAsync(string device) =>
        (await GetJsonAsync(_agents[device].Url + "/diag/process")).GetProperty("pid").GetInt32();

    /// <summary>The next offset <paramref name="device"/> recorded for <paramref name="partition"/> (0 when none).</summary>
    public Task<long> AgentNextOffsetAsync(string device, int partition = 0) => ScalarAsync(
        "SELECT coalesce(max(next_offset), 0) FROM {schema}.device_offsets WHERE device_id = @d AND partition = @p", ("d", device), ("p", partition));
}

/// <summary>
/// One copy as the resync log has it: <see cref="Tag"/> null for a full copy's step; <see cref="Tags"/> the missed
/// writes it completed, comma-separated (a coalesced range completes several, a part before the last of a range none).
/// </summary>
internal sealed record Resync(string? Tag, string Source, string Target, long FirstBlock, int BlockCount, bool Extension, string Tags)
{
    public IReadOnlyList<string> CompletedTags => Tags.Length == 0 ? [] : Tags.Split(',');
}

/// <summary>The write's tag, read from the answer the controller gives (<see cref="WriteResult"/>, defined once in Contracts).</summary>
internal static class WriteResultTag
{
    extension(WriteResult answer)
    {
        public long Seq => Parsed(answer).Seq;

        public int Epoch => Parsed(answer).Epoch;
    }

    private static Tag Parsed(WriteResult answer) =>
        Tag.TryParse(answer.Tag, out var tag) ? tag : throw new FormatException($"the controller answered an unreadable tag '{answer.Tag}'");
}
