using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Api;

/// <summary>
/// The HTTP calls the CLI makes to the controller and the device agents. Every failure becomes a
/// <see cref="CliException"/> that names the URL and, for a refusal, the server's own sentence.
/// </summary>
internal sealed class TmHttp : IDisposable
{
    public const string StackHint = "is the stack running? ops/run.sh --keep starts it";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private static readonly MediaTypeHeaderValue OctetStream = new("application/octet-stream");

    private readonly HttpClient _http;

    public TmHttp(int maxConnectionsPerServer, TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnectionsPerServer, 1);
        // Without a high enough connection limit, concurrency above the default would queue inside the client
        // and the benchmark would measure the client's queue instead of the controller.
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = maxConnectionsPerServer,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(5),
            UseProxy = false,
        };
        TlsTrust.Apply(handler);
        _http = new HttpClient(handler) { Timeout = timeout };
        if (KeySource.Find() is { } key) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
    }

    public static Uri ParseBase(string url, string what)
    {
        if (!Uri.TryCreate(url.TrimEnd('/') + "/", UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            throw new CliException($"{what} '{url}' is not an http(s) URL");
        return uri;
    }

    public Task<ControllerInfo> GetControllerAsync(Uri controller, CancellationToken ct) =>
        GetJsonAsync<ControllerInfo>(new Uri(controller, "controller"), ct);

    public Task<VolumeStatus[]> GetVolumesAsync(Uri controller, CancellationToken ct) =>
        GetJsonAsync<VolumeStatus[]>(new Uri(controller, "volumes"), ct);

    public async Task<VolumeStatus?> GetVolumeAsync(Uri controller, string volume, CancellationToken ct)
    {
        var uri = new Uri(controller, "volumes/" + Uri.EscapeDataString(volume));
        using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Get, uri), ct);
        if (response.StatusCode == HttpStatusCode.NotFound) return null;
        return await ReadJsonAsync<VolumeStatus>(response, ct);
    }

    /// <summary>Creates the volume; false when one with that name exists already.</summary>
    public async Task<bool> CreateVolumeAsync(Uri controller, string volume, int blockSize, long blocks, string[] mirrors, CancellationToken ct)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(controller, "volumes"))
        {
            Content = JsonContent.Create(new { name = volume, blockSize, blocks, mirrors }, options: Json),
        };
        using var response = await SendAsync(request, ct);
        if (response.StatusCode == HttpStatusCode.Conflict) return false;
        await EnsureSuccessAsync(response, ct);
        return true;
    }

    /// <summary>
    /// Creates the volume (<c>tm create</c>) and answers its status; every refusal, an existing name included, is a
    /// <see cref="CliException"/> with the controller's sentence.
    /// </summary>
    public async Task<VolumeStatus> CreateVolumeAsync(Uri controller, string volume, int blockSize, long blocks, string[] mirrors, int? minMirrors, CancellationToken ct)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(controller, "volumes"))
        {
            Content = JsonContent.Create(new { name = volume, blockSize, blocks, mirrors, minMirrors }, options: Json),
        };
        using var response = await SendAsync(request, ct);
        return await ReadJsonAsync<VolumeStatus>(response, ct);
    }

    public async Task<WriteResult> WriteAsync(Uri controller, string volume, long firstBlock, byte[] data, bool waitApplied, CancellationToken ct)
    {
        var path = $"volumes/{Uri.EscapeDataString(volume)}/blocks/{firstBlock}" + (waitApplied ? "?wait=applied" : "");
        using var response = await SendAsync(DataRequest(HttpMethod.Put, new Uri(controller, path), data), ct);
        return await ReadJsonAsync<WriteResult>(response, ct);
    }

    public async Task<WriteResult> AppendAsync(Uri controller, string volume, byte[] data, CancellationToken ct)
    {
        using var response = await SendAsync(DataRequest(HttpMethod.Post, new Uri(controller, $"volumes/{Uri.EscapeDataString(volume)}/append"), data), ct);
        return await ReadJsonAsync<WriteResult>(response, ct);
    }

    /// <summary>A write whose answer is only checked, not parsed: the benchmark's hot loop.</summary>
    public async Task WriteUncheckedBodyAsync(Uri uri, byte[] data, CancellationToken ct)
    {
        using var response = await SendAsync(DataRequest(HttpMethod.Put, uri, data), ct);
        await EnsureSuccessAsync(response, ct);
    }

    public async Task<byte[]> ReadBlocksAsync(Uri controller, string volume, long firstBlock, int count, CancellationToken ct)
    {
        var uri = new Uri(controller, $"volumes/{Uri.EscapeDataString(volume)}/blocks/{firstBlock}?count={count}");
        using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Get, uri), ct);
        await EnsureSuccessAsync(response, ct);
        return await response.Content.ReadAsByteArrayAsync(ct);
    }

    /// <summary>Starts a verify (scrub) of the volume; the controller's refusal (unknown volume, one running) is a <see cref="CliException"/>.</summary>
    public async Task<VerifyReport> StartVerifyAsync(Uri controller, string volume, bool repair, int rangeBlocks, long maxBytesPerSecond, CancellationToken ct)
    {
        var uri = new Uri(controller, string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"volumes/{Uri.EscapeDataString(volume)}/verify?repair={(repair ? "true" : "false")}&rangeBlocks={rangeBlocks}&maxBytesPerSecond={maxBytesPerSecond}"));
        using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Post, uri), ct);
        return await ReadJsonAsync<VerifyReport>(response, ct);
    }

    public Task<VerifyReport> GetVerifyAsync(Uri controller, string volume, CancellationToken ct) =>
        GetJsonAsync<VerifyReport>(new Uri(controller, $"volumes/{Uri.EscapeDataString(volume)}/verify"), ct);

    /// <summary>Begins a rebuild of the device from its log; the controller's refusal is a <see cref="CliException"/>.</summary>
    public async Task<DeviceRebuildReport> StartRebuildAsync(Uri controller, string device, CancellationToken ct)
    {
        using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Post, new Uri(controller, $"devices/{Uri.EscapeDataString(device)}/rebuild")), ct);
        return await ReadJsonAsync<DeviceRebuildReport>(response, ct);
    }

    public Task<DeviceRebuildReport> GetRebuildAsync(Uri controller, string device, CancellationToken ct) =>
        GetJsonAsync<DeviceRebuildReport>(new Uri(controller, $"devices/{Uri.EscapeDataString(device)}/rebuild"), ct);

    /// <summary>Attaches a mirror on <paramref name="device"/> (or, with <paramref name="replaces"/>, replaces that device's mirror by it).</summary>
    public async Task<VolumeStatus> AttachAsync(Uri controller, string volume, string device, string? replaces, CancellationToken ct)
    {
        var path = replaces is null
            ? $"volumes/{Uri.EscapeDataString(volume)}/mirrors"
            : $"volumes/{Uri.EscapeDataString(volume)}/mirrors/{Uri.EscapeDataString(replaces)}/replace";
        using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Post, new Uri(controller, path)) { Content = JsonContent.Create(new MirrorRequest(device), options: Json) }, ct);
        return await ReadJsonAsync<VolumeStatus>(response, ct);
    }

    public async Task<DetachResult> DetachAsync(Uri controller, string volume, string device, CancellationToken ct)
    {
        var uri = new Uri(controller, $"volumes/{Uri.EscapeDataString(volume)}/mirrors/{Uri.EscapeDataString(device)}");
        using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Delete, uri), ct);
        return await ReadJsonAsync<DetachResult>(response, ct);
    }

    public async Task<VolumeStatus> GrowAsync(Uri controller, string volume, long blocks, CancellationToken ct)
    {
        var uri = new Uri(controller, $"volumes/{Uri.EscapeDataString(volume)}/grow");
        using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Post, uri) { Content = JsonContent.Create(new GrowRequest(blocks), options: Json) }, ct);
        return await ReadJsonAsync<VolumeStatus>(response, ct);
    }

    public async Task<DeleteResult> DeleteVolumeAsync(Uri controller, string volume, CancellationToken ct)
    {
        using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Delete, new Uri(controller, $"volumes/{Uri.EscapeDataString(volume)}")), ct);
        return await ReadJsonAsync<DeleteResult>(response, ct);
    }

    public Task<DeviceStatusAnswer> GetAgentStatusAsync(Uri agent, CancellationToken ct) =>
        GetJsonAsync<DeviceStatusAnswer>(new Uri(agent, "status"), ct);

    public async Task<byte[]> ReadObjectAsync(Uri agent, string objectId, long offset, int length, CancellationToken ct)
    {
        var uri = new Uri(agent, $"objects/{Uri.EscapeDataString(objectId)}/data?offset={offset}&length={length}");
        using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Get, uri), ct);
        await EnsureSuccessAsync(response, ct);
        return await response.Content.ReadAsByteArrayAsync(ct);
    }

    public async Task<CreatedKey> CreateKeyAsync(Uri controller, CreateKeyRequest request, CancellationToken ct)
    {
        using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Post, new Uri(controller, "keys")) { Content = JsonContent.Create(request, options: Json) }, ct);
        return await ReadJsonAsync<CreatedKey>(response, ct);
    }

    public Task<ApiKeyInfo[]> ListKeysAsync(Uri controller, CancellationToken ct) =>
        GetJsonAsync<ApiKeyInfo[]>(new Uri(controller, "keys"), ct);

    public async Task<ApiKeyInfo> RevokeKeyAsync(Uri controller, string id, CancellationToken ct)
    {
        using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Delete, new Uri(controller, "keys/" + Uri.EscapeDataString(id))), ct);
        return await ReadJsonAsync<ApiKeyInfo>(response, ct);
    }

    public Task<BlockWriters> GetBlockWritersAsync(Uri controller, string volume, long block, CancellationToken ct) =>
        GetJsonAsync<BlockWriters>(new Uri(controller, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"volumes/{Uri.EscapeDataString(volume)}/blocks/{block}/writer")), ct);

    public Task<ProcessDiagnostics> GetProcessAsync(Uri service, CancellationToken ct) =>
        GetJsonAsync<ProcessDiagnostics>(new Uri(service, "diag/process"), ct);

    public void Dispose() => _http.Dispose();

    private static HttpRequestMessage DataRequest(HttpMethod method, Uri uri, byte[] data)
    {
        var content = new ByteArrayContent(data);
        content.Headers.ContentType = OctetStream;
        return new HttpRequestMessage(method, uri) { Content = content };
    }

    private async Task<T> GetJsonAsync<T>(Uri uri, CancellationToken ct)
    {
        using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Get, uri), ct);
        return await ReadJsonAsync<T>(response, ct);
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        using (request)
        {
            try
            {
                return await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, ct);
            }
            catch (HttpRequestException ex) when (ex.InnerException is System.Security.Authentication.AuthenticationException)
            {
                throw new CliException($"{request.Method} {request.RequestUri} failed: {ex.Message} — {TlsTrust.Hint}", 2);
            }
            catch (HttpRequestException ex)
            {
                throw new CliException($"{request.Method} {request.RequestUri} failed: {ex.Message} — {StackHint}", 2);
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new CliException($"{request.Method} {request.RequestUri} timed out after {_http.Timeout.TotalSeconds:0} s");
            }
        }
    }

    private static async Task<T> ReadJsonAsync<T>(HttpResponseMessage response, CancellationToken ct)
    {
        await EnsureSuccessAsync(response, ct);
        try
        {
            return await response.Content.ReadFromJsonAsync<T>(Json, ct)
                ?? throw new CliException($"{response.RequestMessage?.RequestUri} answered an empty body");
        }
        catch (JsonException ex)
        {
            throw new CliException($"{response.RequestMessage?.RequestUri} answered JSON the CLI does not understand: {ex.Message}");
        }
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode) return;
        var body = await response.Content.ReadAsStringAsync(ct);
        string? detail = null;
        try
        {
            detail = JsonSerializer.Deserialize<ProblemDetails>(body, Json)?.Detail;
        }
        catch (JsonException)
        {
            // Not a problem document: show the start of the raw body instead.
        }
        detail ??= body.Length > 300 ? body[..300] + "…" : body;
        if (response.StatusCode == HttpStatusCode.Unauthorized) detail += $" ({KeySource.Describe()})";
        throw new CliException(
            $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri} answered {(int)response.StatusCode} {response.ReasonPhrase}: {detail}");
    }
}
