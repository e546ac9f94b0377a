using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Every range and number the API takes, tried at its limits (negative, zero, past the end, the largest
/// long, sums and products that overflow, values that do not parse). Each is refused with a 4xx and a
/// sentence before a tag is taken, nothing is recorded, and the volume stays usable at once afterwards.
/// </summary>
public sealed class ApiLimitsTests
{
    private const int BlockSize = 4096;
    private const long Blocks = 16;

    [Fact]
    public async Task writes_reads_and_appends_at_every_limit_are_refused_before_a_tag_is_taken_and_the_volume_stays_usable()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("lim", BlockSize, Blocks);
        var before = await TagsIssuedAsync(cluster);
        var url = cluster.Controller.Url + "/volumes/lim";
        var max = long.MaxValue.ToString(CultureInfo.InvariantCulture);
        var min = long.MinValue.ToString(CultureInfo.InvariantCulture);

        var writes = new (string Case, string Lba, byte[] Data)[]
        {
            ("negative lba", "-1", new byte[BlockSize]),
            ("lba of the largest long", max, new byte[BlockSize]),
            ("lba of the smallest long", min, new byte[BlockSize]),
            ("lba + blocks overflows", (long.MaxValue - 1).ToString(CultureInfo.InvariantCulture), new byte[2 * BlockSize]),
            ("lba at the end", Blocks.ToString(CultureInfo.InvariantCulture), new byte[BlockSize]),
            ("lba + blocks past the end", (Blocks - 1).ToString(CultureInfo.InvariantCulture), new byte[2 * BlockSize]),
            ("zero-length", "0", []),
            ("misaligned", "0", new byte[BlockSize - 1]),
            ("too large", "0", new byte[1024 * 1024]),
            ("lba beyond long", "99999999999999999999", new byte[BlockSize]),
            ("lba below long", "-99999999999999999999", new byte[BlockSize]),
            ("lba not a number", "abc", new byte[BlockSize]),
            ("lba a fraction", "1.5", new byte[BlockSize]),
        };
        foreach (var (name, lba, data) in writes)
        {
            using var content = new ByteArrayContent(data);
            content.Headers.ContentType = new("application/octet-stream");
            await AssertRefusedAsync($"write: {name}", await cluster.Http.PutAsync(new Uri($"{url}/blocks/{lba}"), content));
        }
        using (var content = new ByteArrayContent(new byte[BlockSize]))
            await AssertRefusedAsync("write: unknown volume", await cluster.Http.PutAsync(new Uri($"{cluster.Controller.Url}/volumes/nosuch/blocks/0"), content), HttpStatusCode.NotFound);

        var reads = new (string Case, string Lba, string? Count)[]
        {
            ("count zero", "0", "0"),
            ("count negative", "0", "-1"),
            ("count beyond int", "0", "2147483648"),
            ("count beyond long", "0", "99999999999999999999"),
            ("count huge (count * blockSize overflows)", "0", (long.MaxValue / 2).ToString(CultureInfo.InvariantCulture)),
            ("count * blockSize overflows int", "0", (int.MaxValue / 2).ToString(CultureInfo.InvariantCulture)),
            ("count not a number", "0", "many"),
            ("count empty", "0", ""),
            ("negative lba", "-1", "1"),
            ("lba of the largest long", max, "1"),
            ("lba of the smallest long", min, "1"),
            ("lba + count overflows", (long.MaxValue - 1).ToString(CultureInfo.InvariantCulture), "2"),
            ("lba at the end", Blocks.ToString(CultureInfo.InvariantCulture), null),
            ("lba + count past the end", (Blocks - 1).ToString(CultureInfo.InvariantCulture), "2"),
            ("lba beyond long", "99999999999999999999", "1"),
            ("lba not a number", "abc", "1"),
        };
        foreach (var (name, lba, count) in reads)
        {
            var q = count is null ? "" : "?count=" + count;
            await AssertRefusedAsync($"read: {name}", await cluster.Http.GetAsync(new Uri($"{url}/blocks/{lba}{q}")));
        }
        await AssertRefusedAsync("read: unknown volume", await cluster.Http.GetAsync(new Uri($"{cluster.Controller.Url}/volumes/nosuch/blocks/0")), HttpStatusCode.NotFound);

        var zeroes = new (string Case, string Lba, string? Count, string? Wait)[]
        {
            ("count zero", "0", "0", null),
            ("count negative", "0", "-1", null),
            ("count of the smallest long", "0", min, null),
            ("count above 1 GiB of blocks", "0", (1L << 18) + 1 + "", null),
            ("count beyond int", "0", "2147483648", null),
            ("count beyond long", "0", "99999999999999999999", null),
            ("count not a number", "0", "many", null),
            ("count empty", "0", "", null),
            ("negative lba", "-1", "1", null),
            ("lba of the largest long", max, "1", null),
            ("lba of the smallest long", min, "1", null),
            ("lba + count overflows", (long.MaxValue - 1).ToString(CultureInfo.InvariantCulture), "2", null),
            ("lba at the end", Blocks.ToString(CultureInfo.InvariantCulture), null, null),
            ("lba + count past the end", (Blocks - 1).ToString(CultureInfo.InvariantCulture), "2", null),
            ("lba not a number", "abc", "1", null),
            ("wait unknown", "0", "1", "disk"),
        };
        foreach (var (name, lba, count, wait) in zeroes)
        {
            var q = string.Join('&', new[] { count is null ? null : "count=" + count, wait is null ? null : "wait=" + wait }.OfType<string>());
            await AssertRefusedAsync($"zero: {name}", await cluster.Http.PostAsync(new Uri($"{url}/blocks/{lba}/zero{(q.Length == 0 ? "" : "?" + q)}"), null));
        }
        await AssertRefusedAsync("zero: unknown volume", await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/volumes/nosuch/blocks/0/zero"), null), HttpStatusCode.NotFound);

        var appends = new (string Case, byte[] Data)[]
        {
            ("empty", []),
            ("misaligned", new byte[BlockSize + 1]),
            ("too large", new byte[1024 * 1024]),
        };
        foreach (var (name, data) in appends)
            await AssertRefusedAsync($"append: {name}", await cluster.AppendAsync("lim", data));
        await AssertRefusedAsync("append: unknown volume", await cluster.AppendAsync("nosuch", new byte[BlockSize]), HttpStatusCode.NotFound);

        Assert.Equal(before, await TagsIssuedAsync(cluster));
        Assert.Equal(0, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE type IN ('tag_recorded', 'extension_reserved')"));
        Assert.Equal(0, (await cluster.VolumeStatusAsync("lim")).GetProperty("writesAccepted").GetInt64());

        // Nothing refused is waited for: a normal write and read of the last block come back at once.
        await AssertStillUsableAsync(cluster, "lim", Blocks - 1);
    }

    /// <summary>
    /// Every malformed or out-of-limit volume is refused with a 4xx and a sentence, and nothing is created: a mirror on a
    /// device whose agent never started (a typo) too, which would otherwise be taken, shown in sync and never written.
    /// </summary>
    [Fact]
    public async Task volume_creation_at_every_limit_is_refused_with_a_reason_and_creates_nothing()
    {
        await using var cluster = await TestCluster.StartAsync();
        var url = new Uri(cluster.Controller.Url + "/volumes");
        var nine = "[" + string.Join(",", Enumerable.Range(0, 9).Select(i => $"\"d{i}\"")) + "]";
        var bodies = new (string Case, string? Json)[]
        {
            ("blocks 0", """{"name":"c","blockSize":4096,"blocks":0,"mirrors":["d0","d1"]}"""),
            ("blocks negative", """{"name":"c","blockSize":4096,"blocks":-1,"mirrors":["d0","d1"]}"""),
            ("blocks the largest long", $$"""{"name":"c","blockSize":4096,"blocks":{{long.MaxValue}},"mirrors":["d0","d1"]}"""),
            ("blocks the smallest long", $$"""{"name":"c","blockSize":4096,"blocks":{{long.MinValue}},"mirrors":["d0","d1"]}"""),
            ("blocks * blockSize overflows", $$"""{"name":"c","blockSize":65536,"blocks":{{long.MaxValue / 65536 + 1}},"mirrors":["d0","d1"]}"""),
            ("blocks * blockSize past 1 TiB", $$"""{"name":"c","blockSize":4096,"blocks":{{(1L << 40) / 4096 + 1}},"mirrors":["d0","d1"]}"""),
            ("blocks beyond long", """{"name":"c","blockSize":4096,"blocks":99999999999999999999,"mirrors":["d0","d1"]}"""),
            ("blocks a fraction", """{"name":"c","blockSize":4096,"blocks":1.5,"mirrors":["d0","d1"]}"""),
            ("blocks a string", """{"name":"c","blockSize":4096,"blocks":"16","mirrors":["d0","d1"]}"""),
            ("blocks missing", """{"name":"c","blockSize":4096,"mirrors":["d0","d1"]}"""),
            ("blockSize 0", """{"name":"c","blockSize":0,"blocks":16,"mirrors":["d0","d1"]}"""),
            ("blockSize negative", """{"name":"c","blockSize":-4096,"blocks":16,"mirrors":["d0","d1"]}"""),
            ("blockSize huge", """{"name":"c","blockSize":1073741824,"blocks":16,"mirrors":["d0","d1"]}"""),
            ("blockSize beyond int", """{"name":"c","blockSize":4294967296,"blocks":16,"mirrors":["d0","d1"]}"""),
            ("blockSize not a power of two", """{"name":"c","blockSize":3000,"blocks":16,"mirrors":["d0","d1"]}"""),
            ("blockSize below 512", """{"name":"c","blockSize":256,"blocks":16,"mirrors":["d0","d1"]}"""),
            ("minMirrors 0", """{"name":"c","blockSize":4096,"blocks":16,"mirrors":["d0","d1"],"minMirrors":0}"""),
            ("minMirrors negative", """{"name":"c","blockSize":4096,"blocks":16,"mirrors":["d0","d1"],"minMirrors":-1}"""),
            ("minMirrors over the mirrors", """{"name":"c","blockSize":4096,"blocks":16,"mirrors":["d0","d1"],"minMirrors":3}"""),
            ("mirrors null", """{"name":"c","blockSize":4096,"blocks":16,"mirrors":null}"""),
            ("mirrors missing", """{"name":"c","blockSize":4096,"blocks":16}"""),
            ("mirrors empty", """{"name":"c","blockSize":4096,"blocks":16,"mirrors":[]}"""),
            ("one mirror", """{"name":"c","blockSize":4096,"blocks":16,"mirrors":["d0"]}"""),
            ("duplicate mirrors", """{"name":"c","blockSize":4096,"blocks":16,"mirrors":["d0","d0"]}"""),
            ("too many mirrors", $$"""{"name":"c","blockSize":4096,"blocks":16,"mirrors":{{nine}}}"""),
            ("invalid device name", """{"name":"c","blockSize":4096,"blocks":16,"mirrors":["d0","D 1"]}"""),
            ("a device that never registered", """{"name":"c","blockSize":4096,"blocks":16,"mirrors":["d0","d9"]}"""),
            ("no device registered", """{"name":"c","blockSize":4096,"blocks":16,"mirrors":["ghost-a","ghost-b"]}"""),
            ("null device name", """{"name":"c","blockSize":4096,"blocks":16,"mirrors":["d0",null]}"""),
            ("invalid volume name", """{"name":"Bad Name","blockSize":4096,"blocks":16,"mirrors":["d0","d1"]}"""),
            ("volume name missing", """{"blockSize":4096,"blocks":16,"mirrors":["d0","d1"]}"""),
            ("missing body", null),
            ("empty body", ""),
            ("JSON null", "null"),
            ("JSON array", "[]"),
            ("malformed JSON", """{"name":"c","blockSize":4096,"""),
            ("not JSON", "name=c&blocks=16"),
        };
        foreach (var (name, json) in bodies)
        {
            using var content = json is null ? null : new StringContent(json, Encoding.UTF8, "application/json");
            await AssertRefusedAsync($"create: {name}", await cluster.Http.PostAsync(url, content));
        }
        using (var text = new StringContent("""{"name":"c","blockSize":4096,"blocks":16,"mirrors":["d0","d1"]}""", Encoding.UTF8, "text/plain"))
            await AssertRefusedAsync("create: not declared as JSON", await cluster.Http.PostAsync(url, text));

        Assert.Equal(0, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE type = 'volume_created'"));
        using (var list = await cluster.Http.GetAsync(url))
            Assert.Equal(0, JsonDocument.Parse(await list.Content.ReadAsStringAsync()).RootElement.GetArrayLength());

        // The largest volume allowed is created, and its last block is written and read at once.
        const long largest = (1L << 40) / 65536;
        await cluster.CreateVolumeAsync("c", 65536, largest);
        Assert.Equal(0, await TagsIssuedAsync(cluster));
        await AssertStillUsableAsync(cluster, "c", largest - 1, 65536);
    }

    /// <summary>
    /// A device's several-range read (what a resync batch reads its source with), at its limits: every malformed or
    /// out-of-limit request is refused with a 400 and a sentence (a 404 for an object the device does not hold), and
    /// a good one answers exactly the ranges' bytes, in the order asked, also past what was ever written (zeros).
    /// </summary>
    [Fact]
    public async Task a_devices_range_read_refuses_every_request_at_its_limits_and_answers_the_ranges_in_order()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("rr", BlockSize, Blocks);
        var written = VolumeModel.Data(3, 4, BlockSize);
        Assert.True((await cluster.WriteAsync("rr", 0, written, wait: "applied")).Applied);
        var url = new Uri($"{cluster.Agent("d0").Url}/objects/rr.d0/ranges");

        async Task<HttpResponseMessage> PostAsync(string json, string? objectUrl = null)
        {
            using var content = new StringContent(json, Encoding.UTF8, "application/json");
            return await cluster.Http.PostAsync(objectUrl is null ? url : new Uri(objectUrl), content);
        }

        static string Body(IEnumerable<long> offsets, IEnumerable<long> lengths) =>
            $"{{\"offsets\":[{string.Join(",", offsets)}],\"lengths\":[{string.Join(",", lengths)}]}}";

        var bad = new (string Case, string Json)[]
        {
            ("no ranges", Body([], [])),
            ("more offsets than lengths", Body([0, BlockSize], [BlockSize])),
            ("no lengths at all", "{\"offsets\":[0]}"),
            ("negative offset", Body([-BlockSize], [BlockSize])),
            ("misaligned offset", Body([1], [BlockSize])),
            ("zero length", Body([0], [0])),
            ("negative length", Body([0], [-BlockSize])),
            ("offset + length past the largest offset", Body([long.MaxValue - long.MaxValue % BlockSize], [BlockSize])),
            ("more than 16 MiB in all", Body([0, 0], [16 * 1024 * 1024, BlockSize])),
            ("more ranges than allowed", Body(Enumerable.Repeat(0L, 4097), Enumerable.Repeat((long)BlockSize, 4097))),
            ("length beyond int", Body([0], [int.MaxValue + 1L])),
            ("not JSON", "offsets=0"),
            ("JSON of the wrong shape", "[0, 4096]"),
        };
        foreach (var (name, json) in bad)
            await AssertRefusedAsync($"range read: {name}", await PostAsync(json), HttpStatusCode.BadRequest);
        using (var text = new StringContent(Body([0], [BlockSize]), Encoding.UTF8, "text/plain"))
            await AssertRefusedAsync("range read: not declared JSON", await cluster.Http.PostAsync(url, text), HttpStatusCode.UnsupportedMediaType);
        await AssertRefusedAsync("range read: an object the device does not hold",
            await PostAsync(Body([0], [BlockSize]), $"{cluster.Agent("d0").Url}/objects/nosuch.d0/ranges"), HttpStatusCode.NotFound);

        // Block 2, block 0, then blocks 3 and 4 (block 4 never written: zeros), in that order.
        using var good = await PostAsync(Body([2 * BlockSize, 0, 3 * BlockSize], [BlockSize, BlockSize, 2 * BlockSize]));
        var bytes = await good.Content.ReadAsByteArrayAsync();
        Assert.True(good.IsSuccessStatusCode, Encoding.UTF8.GetString(bytes));
        var expected = written.AsSpan(2 * BlockSize, BlockSize).ToArray()
            .Concat(written.AsSpan(0, BlockSize).ToArray())
            .Concat(written.AsSpan(3 * BlockSize, BlockSize).ToArray())
            .Concat(new byte[BlockSize]).ToArray();
        Assert.Equal(expected, bytes);
        await AssertStillUsableAsync(cluster, "rr", 5);
    }

    private static async Task<long> TagsIssuedAsync(TestCluster cluster) =>
        (await cluster.ControllerInfoAsync()).GetProperty("tagsIssued").GetInt64();

    private static async Task AssertStillUsableAsync(TestCluster cluster, string volume, long lba, int blockSize = BlockSize)
    {
        var data = VolumeModel.Data(7, 1, blockSize);
        var written = cluster.WriteAsync(volume, lba, data, wait: "applied");
        Assert.True(await Task.WhenAny(written, Task.Delay(TimeSpan.FromSeconds(10))) == written, "a write after the refusals did not complete within 10 s");
        Assert.True((await written).Applied);
        var read = cluster.ReadAsync(volume, lba, 1);
        Assert.True(await Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds(10))) == read, "a read after the refusals did not complete within 10 s");
        Assert.Equal(data, await read);
    }

    /// <summary>A 4xx (the given one, if any) whose problem document says why in a sentence.</summary>
    private static async Task AssertRefusedAsync(string what, HttpResponseMessage response, HttpStatusCode? status = null)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            var code = (int)response.StatusCode;
            Assert.True(code is >= 400 and < 500, $"{what}: expected a 4xx, got {code}: {body}");
            if (status is not null) Assert.True(status == response.StatusCode, $"{what}: expected {(int)status}, got {code}: {body}");
            string? detail = null;
            try
            {
                detail = JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString();
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
            {
            }
            Assert.False(string.IsNullOrWhiteSpace(detail), $"{what}: {code} without a reason: '{body}'");
        }
    }
}
