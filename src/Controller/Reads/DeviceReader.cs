using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Npgsql;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Controller.Reads;

/// <summary>Reads a range of a storage object from the device agent that holds it.</summary>
/// <remarks>
/// Every failure to get an answer is a <see cref="HttpRequestException"/> or a <see cref="TimeoutException"/> (a device
/// that does not answer within the client's timeout), which the callers take as "try another mirror": never an
/// <see cref="OperationCanceledException"/> unless the caller's own token was cancelled.
/// </remarks>
internal sealed class DeviceReader(EventStreams store, IHttpClientFactory http)
{
    // Where each device's agent listens, kept until a request to it fails. Looked up by one query per device at a time:
    // the hundreds of reads an NBD client sends at once after a start ask PostgreSQL once, not once each (each on its own
    // connection: they took every connection the server allows, and reads failed "too many clients already").
    private readonly ConcurrentDictionary<string, string> _urls = new(StringComparer.Ordinal);
    private readonly SingleFlight<string, string> _lookups = new(StringComparer.Ordinal);

    /// <summary>The bytes, or null when the device has never been written this object (it reads as zeros).</summary>
    public async Task<byte[]?> ReadAsync(string deviceId, string objectId, long offset, int length, CancellationToken ct)
    {
        using var response = await ObjectRequestAsync(deviceId, objectId, HttpMethod.Get, string.Create(CultureInfo.InvariantCulture, $"data?offset={offset}&length={length}"), null, ct);
        return response is null ? null : await BytesAsync(deviceId, response, length, ct);
    }

    /// <summary>
    /// Several ranges of one object in one request, their bytes one after the other; null when the device has never
    /// been written this object (every range reads as zeros).
    /// </summary>
    public async Task<byte[]?> ReadRangesAsync(string deviceId, string objectId, long[] offsets, int[] lengths, CancellationToken ct)
    {
        using var response = await ObjectRequestAsync(deviceId, objectId, HttpMethod.Post, "ranges",
            System.Net.Http.Json.JsonContent.Create(new Contracts.Api.RangeRead(offsets, lengths)), ct);
        return response is null ? null : await BytesAsync(deviceId, response, lengths.Sum(l => (long)l), ct);
    }

    /// <summary>
    /// The answer's bytes, exactly <paramref name="expected"/> of them: a device pads a range past its file with zeros, so
    /// any other length is a broken answer, never bytes to hand on.
    /// </summary>
    private static async Task<byte[]> BytesAsync(string deviceId, HttpResponseMessage response, long expected, CancellationToken ct)
    {
        var data = await response.Content.ReadAsByteArrayAsync(ct);
        return data.Length == expected ? data : throw new HttpRequestException($"device {deviceId} answered {data.Length} bytes for a read of {expected}");
    }

    /// <summary>The device's checksums of blocks [<paramref name="firstBlock"/>, +<paramref name="count"/>) of an object; null when it has no such object.</summary>
    public async Task<Contracts.Api.BlockChecksums?> ChecksumsAsync(string deviceId, string objectId, long firstBlock, int count, CancellationToken ct)
    {
        using var response = await ObjectRequestAsync(deviceId, objectId, HttpMethod.Get, string.Create(CultureInfo.InvariantCulture, $"checksums?firstBlock={firstBlock}&count={count}"), null, ct);
        if (response is null) return null;
        return await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<Contracts.Api.BlockChecksums>(response.Content, ct)
            ?? throw new HttpRequestException($"device {deviceId} answered checksums without a body");
    }

    /// <summary>Where the device's object holds data in [<paramref name="offset"/>, +<paramref name="length"/>); null when it has no such object (all zeros).</summary>
    public async Task<Contracts.Api.ObjectAllocation?> AllocationAsync(string deviceId, string objectId, long offset, long length, CancellationToken ct)
    {
        using var response = await ObjectRequestAsync(deviceId, objectId, HttpMethod.Get, string.Create(CultureInfo.InvariantCulture, $"allocation?offset={offset}&length={length}"), null, ct);
        if (response is null) return null;
        var answer = await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<Contracts.Api.ObjectAllocation>(response.Content, ct)
            ?? throw new HttpRequestException($"device {deviceId} answered an allocation without a body");
        if (answer.DataOffsets.Length != answer.DataLengths.Length || answer.Until <= offset || answer.Until > offset + length)
            throw new HttpRequestException($"device {deviceId} answered an allocation of [{offset}, +{length}) that does not fit it");
        return answer;
    }

    /// <summary>
    /// <c>/objects/{objectId}/{what}</c> on the device: the successful response, or null when the device says it has no such
    /// object. Only the device's own 404 says so (a problem document): a bare 404 is an agent without the endpoint (an
    /// older version, a proxy), and taking it for "no object" would read data as zeros. Anything else throws.
    /// </summary>
    private async Task<HttpResponseMessage?> ObjectRequestAsync(string deviceId, string objectId, HttpMethod method, string what, HttpContent? content, CancellationToken ct)
    {
        var response = await SendAsync(deviceId, method, $"objects/{Uri.EscapeDataString(objectId)}/{what}", content, ct);
        if (response.StatusCode == HttpStatusCode.NotFound && response.Content.Headers.ContentType?.MediaType == "application/problem+json")
        {
            response.Dispose();
            return null;
        }
        return await SucceededAsync(deviceId, response, ct);
    }

    /// <summary>Asks the device to begin rebuild <paramref name="rebuildId"/> (or report it, if it began it already).</summary>
    public async Task<Contracts.Api.DeviceRebuildProgress> RequestRebuildAsync(string deviceId, string rebuildId, CancellationToken ct)
    {
        using var response = await SucceededAsync(deviceId, await SendAsync(deviceId, HttpMethod.Post, $"rebuild?id={Uri.EscapeDataString(rebuildId)}", null, ct), ct);
        return await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<Contracts.Api.DeviceRebuildProgress>(response.Content, ct)
            ?? throw new HttpRequestException($"device {deviceId} answered a rebuild without a body");
    }

    private async Task<HttpResponseMessage> SendAsync(string deviceId, HttpMethod method, string path, HttpContent? content, CancellationToken ct)
    {
        var baseUrl = await UrlOfAsync(deviceId, ct);
        var client = http.CreateClient("devices");
        using var request = new HttpRequestMessage(method, new Uri($"{baseUrl.TrimEnd('/')}/{path}")) { Content = content };
        try
        {
            return await client.SendAsync(request, ct);
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            // The client's timeout, not the caller's cancellation: a stalled device, which another mirror may replace.
            Forget(deviceId);
            throw new TimeoutException($"device {deviceId} did not answer within {client.Timeout.TotalSeconds:0}s");
        }
        catch (HttpRequestException)
        {
            Forget(deviceId);
            throw;
        }
    }

    /// <summary>The response if it succeeded; otherwise the device's address is looked up again next time, and this throws.</summary>
    private async Task<HttpResponseMessage> SucceededAsync(string deviceId, HttpResponseMessage response, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode) return response;
        using (response)
        {
            Forget(deviceId);
            throw new HttpRequestException($"device {deviceId} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}");
        }
    }

    /// <summary>Looks the device's address up again next time (it may have moved). A lookup running meanwhile is fresh and kept.</summary>
    public void Forget(string deviceId) => _urls.TryRemove(deviceId, out _);

    private async ValueTask<string> UrlOfAsync(string deviceId, CancellationToken ct) =>
        _urls.TryGetValue(deviceId, out var url) ? url : await _lookups.RunAsync(deviceId, LookUpAsync, ct);

    /// <summary>Not on any caller's token: other readers share the answer. A failure (PostgreSQL away, the device never registered) is not kept.</summary>
    private async Task<string> LookUpAsync(string deviceId)
    {
        await using var cmd = store.DataSource.CreateCommand($"SELECT read_url FROM {store.Schema}.devices WHERE id = @id");
        cmd.Parameters.AddWithValue("id", deviceId);
        string? url;
        try
        {
            url = await cmd.ExecuteScalarAsync() as string;
        }
        catch (PostgresException ex) when (ForeignTables.IsMissing(ex))
        {
            url = null; // no device agent has ever started
        }
        return _urls[deviceId] = url ?? throw new HttpRequestException($"device {deviceId} has never registered (is its agent running?)");
    }
}
