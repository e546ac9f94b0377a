using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Access control on the controller's API (issue #12): every endpoint with no key, a wrong, malformed or revoked
/// key, a producer key for another volume, a read-only key writing, and the right key; refusals change nothing; the
/// operator key made at the first start is readable by this user only and kept across restarts.
/// </summary>
public sealed class AccessTests
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Every endpoint but the health checks, with what it asks of a key.</summary>
    private static IEnumerable<(HttpMethod Method, string Path, string? Body, string Need)> Endpoints(string volume) =>
    [
        (HttpMethod.Post, "/volumes", $$"""{"name":"new-{{volume}}","blockSize":4096,"blocks":16,"mirrors":["d0","d1"]}""", "operator"),
        (HttpMethod.Get, "/volumes", null, "any"),
        (HttpMethod.Get, "/controller", null, "any"),
        (HttpMethod.Get, $"/volumes/{volume}", null, "read"),
        (HttpMethod.Get, $"/volumes/{volume}/blocks/0?count=1", null, "read"),
        (HttpMethod.Get, $"/volumes/{volume}/blocks/0/writer", null, "read"),
        (HttpMethod.Get, $"/volumes/{volume}/verify", null, "read"),
        (HttpMethod.Put, $"/volumes/{volume}/blocks/0", "data", "write"),
        (HttpMethod.Post, $"/volumes/{volume}/append", "data", "write"),
        (HttpMethod.Post, $"/volumes/{volume}/blocks/0/zero?count=2", null, "write"),
        (HttpMethod.Post, $"/volumes/{volume}/verify", null, "operator"),
        (HttpMethod.Post, $"/volumes/{volume}/mirrors", """{"device":"d2"}""", "operator"),
        (HttpMethod.Post, $"/volumes/{volume}/mirrors/d1/replace", """{"device":"d2"}""", "operator"),
        (HttpMethod.Delete, $"/volumes/{volume}/mirrors/d1", null, "operator"),
        (HttpMethod.Post, $"/volumes/{volume}/grow", """{"blocks":64}""", "operator"),
        (HttpMethod.Delete, $"/volumes/{volume}", null, "operator"),
        (HttpMethod.Post, "/devices/d1/rebuild", null, "operator"),
        (HttpMethod.Get, "/devices/d1/rebuild", null, "operator"),
        (HttpMethod.Post, "/keys", """{"role":"operator"}""", "operator"),
        (HttpMethod.Get, "/keys", null, "operator"),
        (HttpMethod.Delete, "/keys/000000000000", null, "operator"),
        (HttpMethod.Get, "/diag/process", null, "operator"),
    ];

    [Fact]
    public async Task every_endpoint_refuses_no_key_a_wrong_key_and_a_revoked_key_with_401_and_changes_nothing()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__AccessFailureLimit"] = "100000" });
        await cluster.CreateVolumeAsync("mine", 4096, 16);
        var revoked = await cluster.CreateKeyAsync(new CreateKeyRequest(AccessRoles.Operator, null));
        await SendAsync(cluster, HttpMethod.Delete, "/keys/" + revoked.Info.Id, null, cluster.OperatorKey, HttpStatusCode.OK);
        var before = await StateAsync(cluster, "mine");

        var wellFormedButUnknown = "tm_0123456789ab_" + new string('A', 43);
        var operatorKeyMistyped = cluster.OperatorKey[..^1] + (cluster.OperatorKey[^1] == 'A' ? 'B' : 'A');
        foreach (var (method, path, body, _) in Endpoints("mine"))
        {
            foreach (var key in new[] { null, "", "not-a-key", wellFormedButUnknown, operatorKeyMistyped, revoked.Key })
            {
                var (status, detail) = await SendAsync(cluster, method, path, body, key);
                Assert.True(status == HttpStatusCode.Unauthorized, $"{method} {path} with key '{key}' answered {(int)status}: {detail}");
                Assert.False(string.IsNullOrWhiteSpace(detail), $"{method} {path}: a refusal says why");
            }
        }
        // In the other header too.
        using (var request = new HttpRequestMessage(HttpMethod.Get, cluster.Controller.Url + "/volumes"))
        {
            request.Headers.Add(AccessHeaders.ApiKey, revoked.Key);
            using var bare = new HttpClient();
            Assert.Equal(HttpStatusCode.Unauthorized, (await bare.SendAsync(request)).StatusCode);
        }
        // The health checks ask for no key.
        using (var bare = new HttpClient())
        {
            Assert.Equal(HttpStatusCode.OK, (await bare.GetAsync(cluster.Controller.Url + "/health/live")).StatusCode);
        }
        Assert.Equal(before, await StateAsync(cluster, "mine"));
    }

    [Fact]
    public async Task producer_keys_see_and_use_only_their_volumes_and_read_only_keys_never_write()
    {
        await using var cluster = await TestCluster.StartAsync(devices: ["d0", "d1", "d2"], controllerSettings: new() { ["Controller__AccessFailureLimit"] = "100000" });
        await cluster.CreateVolumeAsync("mine", 4096, 16, mirrors: ["d0", "d1"]);
        await cluster.CreateVolumeAsync("theirs", 4096, 16, mirrors: ["d0", "d1"]);
        var producer = (await cluster.CreateKeyAsync(new CreateKeyRequest(AccessRoles.Producer, ["mine"], Description: "writer of mine"))).Key;
        var reader = (await cluster.CreateKeyAsync(new CreateKeyRequest(AccessRoles.Producer, ["mine"], ReadOnly: true))).Key;
        var other = (await cluster.CreateKeyAsync(new CreateKeyRequest(AccessRoles.Producer, ["theirs"]))).Key;
        var theirsBefore = await StateAsync(cluster, "theirs");

        // The producer of "mine": every endpoint on "theirs" refused (403, nothing changed); on "mine" it reads and
        // writes, and nothing an operator does.
        foreach (var (method, path, body, need) in Endpoints("theirs"))
        {
            var (status, detail) = await SendAsync(cluster, method, path, body, producer);
            var expected = need == "any" ? HttpStatusCode.OK : HttpStatusCode.Forbidden;
            Assert.True(status == expected, $"producer of mine: {method} {path} answered {(int)status}, not {(int)expected}: {detail}");
        }
        Assert.Equal(theirsBefore, await StateAsync(cluster, "theirs"));
        foreach (var (method, path, body, need) in Endpoints("mine"))
        {
            var (status, detail) = await SendAsync(cluster, method, path, body, producer);
            if (need == "operator")
                Assert.True(status == HttpStatusCode.Forbidden, $"producer: {method} {path} answered {(int)status}: {detail}");
            else
                Assert.True(status is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden), $"producer of mine: {method} {path} refused: {detail}");
        }
        // Listing shows only the key's volumes; a volume that does not exist is refused the same as another's.
        var listed = await GetAsync<VolumeStatus[]>(cluster, "/volumes", producer);
        Assert.Equal(["mine"], listed.Select(v => v.Name));
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(cluster, HttpMethod.Get, "/volumes/nosuch", null, producer)).Status);
        Assert.Equal(["theirs"], (await GetAsync<VolumeStatus[]>(cluster, "/volumes", other)).Select(v => v.Name));
        Assert.Equal(["mine", "theirs"], (await GetAsync<VolumeStatus[]>(cluster, "/volumes", cluster.OperatorKey)).Select(v => v.Name).Order());

        // The read-only key reads "mine" and cannot write it, in either way.
        var written = await cluster.ReadAsync("mine", 0, 1);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(cluster, HttpMethod.Get, "/volumes/mine/blocks/0?count=1", null, reader)).Status);
        var (putStatus, putDetail) = await SendAsync(cluster, HttpMethod.Put, "/volumes/mine/blocks/0", "data", reader);
        Assert.Equal(HttpStatusCode.Forbidden, putStatus);
        Assert.Contains("read-only", putDetail, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(cluster, HttpMethod.Post, "/volumes/mine/append", "data", reader)).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(cluster, HttpMethod.Post, "/volumes/mine/blocks/0/zero", null, reader)).Status);
        Assert.Equal(written, await cluster.ReadAsync("mine", 0, 1));
        Assert.Equal(theirsBefore, await StateAsync(cluster, "theirs"));
    }

    [Fact]
    public async Task agents_serve_the_controller_and_operators_only_never_a_producer()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__AccessFailureLimit"] = "100000" });
        await cluster.CreateVolumeAsync("mine", 4096, 16);
        var data = new byte[4096];
        Array.Fill(data, (byte)0x5a);
        await cluster.WriteAsync("mine", 0, data, wait: "applied");
        var producer = (await cluster.CreateKeyAsync(new CreateKeyRequest(AccessRoles.Producer, ["mine"]))).Key;
        var objectId = (await GetAsync<VolumeStatus>(cluster, "/volumes/mine", cluster.OperatorKey)).Mirrors.Single(m => m.DeviceId == "d0").ObjectId;
        string secret;
        await using (var conn = await cluster.DataSource.OpenConnectionAsync())
        await using (var cmd = new Npgsql.NpgsqlCommand($"SELECT secret FROM {cluster.Schema}.service_secret", conn))
        {
            secret = (string)(await cmd.ExecuteScalarAsync())!;
        }
        var agent = cluster.Agent("d0").Url;
        var calls = new (HttpMethod Method, string Path, string? Body)[]
        {
            (HttpMethod.Get, "/status", null),
            (HttpMethod.Get, $"/objects/{objectId}/data?offset=0&length=4096", null),
            (HttpMethod.Post, $"/objects/{objectId}/ranges", """{"offsets":[0],"lengths":[4096]}"""),
            (HttpMethod.Get, $"/objects/{objectId}/checksums?firstBlock=0&count=1", null),
            (HttpMethod.Post, "/rebuild", null),
            (HttpMethod.Get, "/diag/process", null),
        };
        foreach (var (method, path, body) in calls)
        {
            foreach (var (header, value, expected) in new (string?, string?, HttpStatusCode)[]
            {
                (null, null, HttpStatusCode.Unauthorized),
                ("Authorization", "Bearer " + producer, HttpStatusCode.Forbidden),
                ("Authorization", "Bearer tm_0123456789ab_" + new string('A', 43), HttpStatusCode.Unauthorized),
                ("X-TM-Service", secret[..^2] + "xx", HttpStatusCode.Unauthorized),
            })
            {
                var (status, detail) = await SendToAsync(agent + path, method, body, header, value);
                Assert.True(status == expected, $"agent {method} {path} with {header} answered {(int)status}, not {(int)expected}: {detail}");
            }
        }
        // The controller's secret and an operator's key are served (a rebuild without its id is a 400 of the endpoint itself).
        foreach (var (header, value) in new[] { ("X-TM-Service", secret), ("Authorization", "Bearer " + cluster.OperatorKey) })
        {
            var (status, detail) = await SendToAsync(agent + $"/objects/{objectId}/data?offset=0&length=4096", HttpMethod.Get, null, header, value);
            Assert.True(status == HttpStatusCode.OK, $"{header}: {(int)status} {detail}");
            Assert.Equal(HttpStatusCode.BadRequest, (await SendToAsync(agent + "/rebuild", HttpMethod.Post, null, header, value)).Status);
        }
        using (var bare = new HttpClient())
        {
            Assert.Equal(HttpStatusCode.OK, (await bare.GetAsync(agent + "/health/live")).StatusCode);
        }
        // And the controller reads through them: the write reads back.
        Assert.Equal(data, await cluster.ReadAsync("mine", 0, 1));
    }

    private static async Task<(HttpStatusCode Status, string Detail)> SendToAsync(string url, HttpMethod method, string? body, string? header, string? value)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        using var request = new HttpRequestMessage(method, url);
        if (header is not null) request.Headers.TryAddWithoutValidation(header, value);
        if (body is not null) request.Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task keys_are_created_checked_listed_without_secrets_and_revoked_at_once()
    {
        await using var cluster = await TestCluster.StartAsync();
        foreach (var bad in new[]
        {
            """{"role":"admin"}""", """{"role":"producer"}""", """{"role":"producer","volumes":[]}""",
            """{"role":"operator","volumes":["v"]}""", """{"role":"operator","readOnly":true}""", """{"role":"producer","volumes":["Bad Name"]}""",
            """{"role":"producer","volumes":"v"}""", "not json", """{"role":"producer","volumes":["v"],"description":"{{new string('x', 201)}}"}""",
        })
        {
            var (status, detail) = await SendAsync(cluster, HttpMethod.Post, "/keys", bad.Replace("{{new string('x', 201)}}", new string('x', 201), StringComparison.Ordinal), cluster.OperatorKey);
            Assert.True(status == HttpStatusCode.BadRequest, $"POST /keys {bad} answered {(int)status}: {detail}");
        }
        var keysBefore = await GetAsync<ApiKeyInfo[]>(cluster, "/keys", cluster.OperatorKey);
        Assert.Single(keysBefore);   // the operator key of the first start, and nothing the refusals made

        var created = await cluster.CreateKeyAsync(new CreateKeyRequest(AccessRoles.Producer, ["v1", "v2", "v1"], ReadOnly: true, Description: "dashboard"));
        Assert.StartsWith("tm_" + created.Info.Id + "_", created.Key, StringComparison.Ordinal);
        Assert.Equal(["v1", "v2"], created.Info.Volumes);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(cluster, HttpMethod.Get, "/volumes", null, created.Key)).Status);
        var listing = await (await Client(cluster.OperatorKey).GetAsync(cluster.Controller.Url + "/keys")).Content.ReadAsStringAsync();
        Assert.DoesNotContain(created.Key, listing, StringComparison.Ordinal);
        Assert.DoesNotContain(cluster.OperatorKey, listing, StringComparison.Ordinal);
        Assert.DoesNotContain(created.Key, cluster.Logs(), StringComparison.Ordinal);

        // A key cannot revoke itself; an unknown id is 404; a revoked key is refused at once.
        var self = cluster.OperatorKey.Split('_')[1];
        Assert.Equal(HttpStatusCode.Conflict, (await SendAsync(cluster, HttpMethod.Delete, "/keys/" + self, null, cluster.OperatorKey)).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(cluster, HttpMethod.Delete, "/keys/ffffffffffff", null, cluster.OperatorKey)).Status);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(cluster, HttpMethod.Delete, "/keys/" + created.Info.Id, null, cluster.OperatorKey)).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(cluster, HttpMethod.Get, "/volumes", null, created.Key)).Status);
        var after = await GetAsync<ApiKeyInfo[]>(cluster, "/keys", cluster.OperatorKey);
        Assert.NotNull(after.Single(k => k.Id == created.Info.Id).RevokedAt);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task the_first_start_writes_an_operator_key_only_this_user_can_read_and_a_restart_keeps_it()
    {
        await using var cluster = await TestCluster.StartAsync();
        var key = cluster.OperatorKey;
        Assert.StartsWith("tm_", key, StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(cluster.OperatorKeyFile));

        await cluster.RestartControllerAsync(kill: true);
        Assert.Equal(key, cluster.OperatorKey);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(cluster, HttpMethod.Get, "/keys", null, key)).Status);

        // A file that no longer holds a live operator key is replaced by a new key at the next start.
        await File.WriteAllTextAsync(cluster.OperatorKeyFile, "tm_0123456789ab_" + new string('A', 43));
        await cluster.RestartControllerAsync(kill: false);
        var replaced = cluster.OperatorKey;
        Assert.NotEqual(key, replaced);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(cluster.OperatorKeyFile));
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(cluster, HttpMethod.Get, "/keys", null, replaced)).Status);
    }

    [Fact]
    public async Task a_source_refused_too_often_is_answered_429_until_the_window_passes()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__AccessFailureLimit"] = "5" });
        for (var i = 0; i < 5; i++)
            Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(cluster, HttpMethod.Get, "/volumes", null, "wrong")).Status);
        var (status, detail) = await SendAsync(cluster, HttpMethod.Get, "/volumes", null, "wrong");
        Assert.True(status == HttpStatusCode.TooManyRequests, $"answered {(int)status}: {detail}");
        // Even a good key from that source waits (its keys are not looked up) until the 10 s window has passed.
        Assert.Equal(HttpStatusCode.TooManyRequests, (await SendAsync(cluster, HttpMethod.Get, "/volumes", null, cluster.OperatorKey)).Status);
        await Eventually.TrueAsync(async () => (await SendAsync(cluster, HttpMethod.Get, "/volumes", null, cluster.OperatorKey)).Status == HttpStatusCode.OK,
            TimeSpan.FromSeconds(30), () => "the operator key was still refused after the window");
    }

    private static async Task<T> GetAsync<T>(TestCluster cluster, string path, string key)
    {
        using var http = Client(key);
        return (await http.GetFromJsonAsync<T>(cluster.Controller.Url + path, Json))!;
    }

    /// <summary>Sends with <paramref name="key"/> (none when null); the status and the problem's detail.</summary>
    private static async Task<(HttpStatusCode Status, string Detail)> SendAsync(
        TestCluster cluster, HttpMethod method, string path, string? body, string? key, HttpStatusCode? expect = null)
    {
        using var http = Client(key);
        using var request = new HttpRequestMessage(method, cluster.Controller.Url + path);
        if (body == "data")
            request.Content = new ByteArrayContent(new byte[4096]) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } };
        else if (body is not null)
            request.Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        string detail = text;
        try
        {
            var root = JsonDocument.Parse(text).RootElement;
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("detail", out var d)) detail = d.GetString() ?? text;
        }
        catch (JsonException)
        {
        }
        if (expect is { } e) Assert.True(response.StatusCode == e, $"{method} {path} answered {(int)response.StatusCode}: {detail}");
        return (response.StatusCode, detail);
    }

    private static HttpClient Client(string? key)
    {
        var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null) http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "Bearer " + key);
        return http;
    }

    /// <summary>What a refused request must not change: the volumes (names, sizes, mirrors), the keys, and the volume's first blocks.</summary>
    private static async Task<string> StateAsync(TestCluster cluster, string volume)
    {
        var volumes = await GetAsync<VolumeStatus[]>(cluster, "/volumes", cluster.OperatorKey);
        var keys = await GetAsync<ApiKeyInfo[]>(cluster, "/keys", cluster.OperatorKey);
        var data = await cluster.ReadAsync(volume, 0, 4);
        return string.Join("\n",
            string.Join(";", volumes.OrderBy(v => v.Name, StringComparer.Ordinal).Select(v => $"{v.Name}:{v.Blocks}:{string.Join(",", v.Mirrors.Select(m => m.DeviceId))}")),
            string.Join(";", keys.Select(k => $"{k.Id}:{k.RevokedAt}")),
            Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(data)));
    }
}
