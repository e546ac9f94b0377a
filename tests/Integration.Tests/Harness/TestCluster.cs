using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
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

    private TestCluster(string[] devices, Dictionary<string, string>? controllerSettings)
    {
        Id = "t" + Guid.NewGuid().ToString("N")[..12];
        Directory = System.IO.Directory.CreateTempSubdirectory("tm-it-" + Id + "-").FullName;
        Kafka = MockKafkaCluster.Start(3);
        foreach (var d in devices) Kafka.CreateTopic("tm.device." + d, 1);
        DataSource = NpgsqlDataSource.Create(Postgres);
        _controllerSettings = controllerSettings ?? [];
        Devices = devices;
        Http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
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

    public string DataDirectory(string device) => Path.Combine(Directory, "data", device);

    public static async Task<TestCluster> StartAsync(string[]? devices = null, Dictionary<string, string>? controllerSettings = null)
    {
        var c = new TestCluster(devices ?? ["d0", "d1"], controllerSettings);
        try
        {
            c.Controller = new ServiceProcess("controller", Paths.Deployable("Controller"), $"http://127.0.0.1:{Paths.FreePort()}", c.Directory,
                c.Environment(c._controllerSettings));
            c.Controller.Start();
            await c.WaitReadyAsync(c.Controller, "/controller");
            foreach (var d in c.Devices)
            {
                var agent = new ServiceProcess("agent-" + d, Paths.Deployable("DeviceAgent"), $"http://127.0.0.1:{Paths.FreePort()}", c.Directory,
                    c.Environment(new() { ["Agent__DeviceId"] = d, ["Agent__DataDirectory"] = c.DataDirectory(d) }));
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

    private Dictionary<string, string> Environment(Dictionary<string, string> extra)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["TaggedMirror__Postgres"] = Postgres,
            ["TaggedMirror__Schema"] = Schema,
            ["TaggedMirror__Kafka"] = Kafka.BootstrapServers,
            ["TaggedMirror__Cluster"] = Id,
        };
        foreach (var (k, v) in extra) env[k] = v;
        return env;
    }

    public async Task RestartControllerAsync(bool kill)
    {
        if (kill) Controller.Kill(); else await Controller.StopAsync();
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

    private async Task WaitReadyAsync(ServiceProcess p, string path)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            if (!p.Running) throw new InvalidOperationException($"{p.Name} exited during start:\n{p.Tail()}");
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

    public Task<JsonElement> VolumeStatusAsync(string volume) => GetJsonAsync($"{Controller.Url}/volumes/{volume}");

    public Task<JsonElement> ControllerInfoAsync() => GetJsonAsync(Controller.Url + "/controller");

    private async Task<JsonElement> GetJsonAsync(string url)
    {
        using var r = await Http.GetAsync(new Uri(url));
        r.EnsureSuccessStatusCode();
        return (await r.Content.ReadFromJsonAsync<JsonElement>());
    }

    public async Task CreateVolumeAsync(string name, int blockSize, long blocks, int? minMirrors = null)
    {
        using var r = await Http.PostAsJsonAsync(new Uri(Controller.Url + "/volumes"), new { name, blockSize, blocks, mirrors = Devices, minMirrors });
        Assert.True(r.IsSuccessStatusCode, $"create volume: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
    }

    public Task<HttpResponseMessage> PutBlocksAsync(string volume, long firstBlock, byte[] data, string? wait = null)
    {
        var content = new ByteArrayContent(data);
        content.Headers.ContentType = new("application/octet-stream");
        var q = wait is null ? "" : "?wait=" + wait;
        return Http.PutAsync(new Uri($"{Controller.Url}/volumes/{volume}/blocks/{firstBlock}{q}"), content);
    }

    public Task<HttpResponseMessage> AppendAsync(string volume, byte[] data)
    {
        var content = new ByteArrayContent(data);
        content.Headers.ContentType = new("application/octet-stream");
        return Http.PostAsync(new Uri($"{Controller.Url}/volumes/{volume}/append"), content);
    }

    /// <summary>Writes and returns the answer; fails the test on a refusal.</summary>
    public async Task<WriteAnswer> WriteAsync(string volume, long firstBlock, byte[] data, string? wait = null)
    {
        using var r = await PutBlocksAsync(volume, firstBlock, data, wait);
        var body = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"write [{firstBlock}+{data.Length}B]: {(int)r.StatusCode} {body}");
        return JsonSerializer.Deserialize<WriteAnswer>(body, JsonSerializerOptions.Web)!;
    }

    public async Task<byte[]> ReadAsync(string volume, long firstBlock, int count)
    {
        using var r = await Http.GetAsync(new Uri($"{Controller.Url}/volumes/{volume}/blocks/{firstBlock}?count={count}"));
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
        await Eventually.TrueAsync(async () => (await ControllerInfoAsync()).GetProperty("inflight").GetInt32() == 0,
            timeout ?? TimeSpan.FromSeconds(60), () => $"writes still in flight\n{Logs()}");
        await Eventually.TrueAsync(async () => await LiveEntriesAsync() == 0, timeout ?? TimeSpan.FromSeconds(60),
            () => $"tag tables did not drain: {LiveEntriesAsync().GetAwaiter().GetResult()} live entries\n{Logs()}");
    }

    public byte[] ObjectFile(string device, string volume)
    {
        var path = Path.Combine(DataDirectory(device), $"{volume}.{device}.obj");
        return File.Exists(path) ? File.ReadAllBytes(path) : [];
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var a in _agents.Values) await a.DisposeAsync();
        if (Controller is not null) await Controller.DisposeAsync();
        Kafka.Dispose();
        try
        {
            await using var cmd = DataSource.CreateCommand($"DROP SCHEMA IF EXISTS {Schema} CASCADE");
            await cmd.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException)
        {
        }
        await DataSource.DisposeAsync();
        Http.Dispose();
        if (System.Environment.GetEnvironmentVariable("TM_KEEP_TEST_DIRS") is null)
        {
            try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Logs of every process, for assertion messages.</summary>
    public string Logs() => string.Join("\n", new[] { Controller }.Concat(_agents.Values).Select(p => $"==== {p.Name}\n{p.Tail(30)}"));
}

internal sealed record WriteAnswer(string Tag, long FirstBlock, int Blocks, int MirrorsHolding, int Mirrors, bool Applied)
{
    public long Seq => long.Parse(Tag.Split(':')[2], System.Globalization.CultureInfo.InvariantCulture);

    public int Epoch => int.Parse(Tag.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture);
}
