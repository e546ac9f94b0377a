using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Npgsql;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Controller.Reads;

/// <summary>Reads a range of a storage object from the device agent that holds it.</summary>
internal sealed class DeviceReader(EventStreams store, IHttpClientFactory http)
{
    private readonly ConcurrentDictionary<string, string> _urls = new(StringComparer.Ordinal);

    /// <summary>The bytes, or null when the device has never been written this object (it reads as zeros).</summary>
    public async Task<byte[]?> ReadAsync(string deviceId, string objectId, long offset, int length, CancellationToken ct)
    {
        using var response = await GetAsync(deviceId, objectId, string.Create(CultureInfo.InvariantCulture, $"data?offset={offset}&length={length}"), ct);
        return response is null ? null : await response.Content.ReadAsByteArrayAsync(ct);
    }

    /// <summary>
    /// Several ranges of one object in one request, their bytes one after the other; null when the device has never
    /// been written this object (every range reads as zeros).
    /// </summary>
    public async Task<byte[]?> ReadRangesAsync(string deviceId, string objectId, long[] offsets, int[] lengths, CancellationToken ct)
    {
        var baseUrl = await UrlOfAsync(deviceId, ct);
        var client = http.CreateClient("devices");
        using var response = await client.PostAsync(new Uri($"{baseUrl.TrimEnd('/')}/objects/{Uri.EscapeDataString(objectId)}/ranges"),
            System.Net.Http.Json.JsonContent.Create(new Contracts.Api.RangeRead(offsets, lengths)), ct);
        // The device's own 404 (no such object) is a problem document; a bare 404 is an agent without this endpoint,
        // never to be taken for zeros.
        if (response.StatusCode == HttpStatusCode.NotFound && response.Content.Headers.ContentType?.MediaType == "application/problem+json") return null;
        if (!response.IsSuccessStatusCode)
        {
            _urls.TryRemove(deviceId, out _);
            throw new HttpRequestException($"device {deviceId} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}");
        }
        var data = await response.Content.ReadAsByteArrayAsync(ct);
        var expected = lengths.Sum(l => (long)l);
        if (data.Length != expected)
            throw new HttpRequestException($"device {deviceId} answered {data.Length} bytes for ranges of {expected}");
        return data;
    }

    /// <summary>The device's checksums of blocks [<paramref name="firstBlock"/>, +<paramref name="count"/>) of an object; null when it has no such object.</summary>
    public async Task<Contracts.Api.BlockChecksums?> ChecksumsAsync(string deviceId, string objectId, long firstBlock, int count, CancellationToken ct)
    {
        using var response = await GetAsync(deviceId, objectId, string.Create(CultureInfo.InvariantCulture, $"checksums?firstBlock={firstBlock}&count={count}"), ct);
        if (response is null) return null;
        return await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<Contracts.Api.BlockChecksums>(response.Content, ct)
            ?? throw new HttpRequestException($"device {deviceId} answered checksums without a body");
    }

    /// <summary>Where the device's object holds data in [<paramref name="offset"/>, +<paramref name="length"/>); null when it has no such object (all zeros).</summary>
    public async Task<Contracts.Api.ObjectAllocation?> AllocationAsync(string deviceId, string objectId, long offset, long length, CancellationToken ct)
    {
        var baseUrl = await UrlOfAsync(deviceId, ct);
        var client = http.CreateClient("devices");
        using var response = await client.GetAsync(new Uri(string.Create(CultureInfo.InvariantCulture,
            $"{baseUrl.TrimEnd('/')}/objects/{Uri.EscapeDataString(objectId)}/allocation?offset={offset}&length={length}")), ct);
        // Only the device's own 404 (a problem document) says it has no such object: a bare 404 is an agent without this
        // endpoint, and taking it for "all zeros" would tell a copying client to skip data.
        if (response.StatusCode == HttpStatusCode.NotFound && response.Content.Headers.ContentType?.MediaType == "application/problem+json") return null;
        if (!response.IsSuccessStatusCode)
        {
            _urls.TryRemove(deviceId, out _);
            throw new HttpRequestException($"device {deviceId} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}");
        }
        var answer = await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<Contracts.Api.ObjectAllocation>(response.Content, ct)
            ?? throw new HttpRequestException($"device {deviceId} answered an allocation without a body");
        if (answer.DataOffsets.Length != answer.DataLengths.Length || answer.Until <= offset || answer.Until > offset + length)
            throw new HttpRequestException($"device {deviceId} answered an allocation of [{offset}, +{length}) that does not fit it");
        return answer;
    }

    /// <summary>GET <c>/objects/{objectId}/{what}</c> on the device: the response, null for 404 (no such object), or an error.</summary>
    private async Task<HttpResponseMessage?> GetAsync(string deviceId, string objectId, string what, CancellationToken ct)
    {
        var baseUrl = await UrlOfAsync(deviceId, ct);
        var client = http.CreateClient("devices");
        var response = await client.GetAsync(new Uri($"{baseUrl.TrimEnd('/')}/objects/{Uri.EscapeDataString(objectId)}/{what}"), ct);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            response.Dispose();
            return null;
        }
        if (!response.IsSuccessStatusCode)
        {
            _urls.TryRemove(deviceId, out _);
            using (response)
            {
                throw new HttpRequestException($"device {deviceId} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}");
            }
        }
        return response;
    }

    /// <summary>Asks the device to begin rebuild <paramref name="rebuildId"/> (or report it, if it began it already).</summary>
    public async Task<Contracts.Api.DeviceRebuildProgress> RequestRebuildAsync(string deviceId, string rebuildId, CancellationToken ct)
    {
        var baseUrl = await UrlOfAsync(deviceId, ct);
        var client = http.CreateClient("devices");
        using var response = await client.PostAsync(new Uri($"{baseUrl.TrimEnd('/')}/rebuild?id={Uri.EscapeDataString(rebuildId)}"), null, ct);
        if (!response.IsSuccessStatusCode)
        {
            _urls.TryRemove(deviceId, out _);
            throw new HttpRequestException($"device {deviceId} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}");
        }
        return await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<Contracts.Api.DeviceRebuildProgress>(response.Content, ct)
            ?? throw new HttpRequestException($"device {deviceId} answered a rebuild without a body");
    }

    public void Forget(string deviceId) => _urls.TryRemove(deviceId, out _);

    private async ValueTask<string> UrlOfAsync(string deviceId, CancellationToken ct)
    {
        if (_urls.TryGetValue(deviceId, out var url)) return url;
        await using var cmd = store.DataSource.CreateCommand($"SELECT read_url FROM {store.Schema}.devices WHERE id = @id");
        cmd.Parameters.AddWithValue("id", deviceId);
        try
        {
            url = await cmd.ExecuteScalarAsync(ct) as string;
        }
        catch (PostgresException ex) when (ForeignTables.IsMissing(ex))
        {
            url = null; // no device agent has ever started
        }
        if (url is null) throw new HttpRequestException($"device {deviceId} has never registered (is its agent running?)");
        _urls[deviceId] = url;
        return url;
    }
}
