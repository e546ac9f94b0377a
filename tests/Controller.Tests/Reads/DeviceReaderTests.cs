using System.Net;
using Npgsql;
using TaggedMirror.Controller.Reads;
using TaggedMirror.Controller.Tests.Reconciliation;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Controller.Tests.Reads;

/// <summary>
/// How the controller reads a device's agent, against the real PostgreSQL (the device's address in a <c>devices</c> table
/// of a schema of its own, whose every lookup is counted) and a real HTTP server on loopback that answers as each case
/// needs: the device's own "no such object" is zeros, anything else that is not an answer is an error the caller takes
/// as "try another mirror", and reads arriving by the hundred look the address up once.
/// </summary>
public sealed class DeviceReaderTests : IAsyncLifetime
{
    private static readonly NpgsqlDataSource DataSource = ScratchReconciliation.DataSource;

    private readonly string _schema = "t_" + Guid.NewGuid().ToString("N");
    private readonly HttpListener _listener = new();
    private readonly CancellationTokenSource _stop = new();
    private string _url = "";
    private Task _serving = Task.CompletedTask;

    public async Task InitializeAsync()
    {
        for (var attempt = 0; ; attempt++)
        {
            var port = Random.Shared.Next(20000, 32000);
            _url = $"http://127.0.0.1:{port}/";
            _listener.Prefixes.Clear();
            _listener.Prefixes.Add(_url);
            try
            {
                _listener.Start();
                break;
            }
            catch (HttpListenerException) when (attempt < 20)
            {
            }
        }
        _serving = ServeAsync();
        // Every row the lookup reads draws a number from the sequence: its value is how many lookups ran.
        await ExecuteAsync($"""
            CREATE SCHEMA {_schema};
            CREATE SEQUENCE {_schema}.lookups;
            CREATE TABLE {_schema}.registered (id text PRIMARY KEY, read_url text NOT NULL);
            CREATE VIEW {_schema}.devices AS SELECT r.id, r.read_url FROM {_schema}.registered r, LATERAL (SELECT nextval('{_schema}.lookups')) n;
            INSERT INTO {_schema}.registered VALUES ('d0', '{_url}');
            """);
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Close();
        try
        {
            await _serving;
        }
        catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or OperationCanceledException)
        {
        }
        await ExecuteAsync($"DROP SCHEMA {_schema} CASCADE");
        _stop.Dispose();
    }

    /// <summary>
    /// Object "problem": the device's own 404, a problem document. Object "bare": a 404 with no body (an agent without the
    /// endpoint, a proxy). Object "short": 2 bytes whatever was asked. Object "stall": never answered. Object "data": 4 bytes per request, after a short pause.
    /// </summary>
    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var context = await _listener.GetContextAsync();
            _ = Task.Run(async () =>
            {
                var path = context.Request.Url!.AbsolutePath;
                var response = context.Response;
                if (path.StartsWith("/objects/problem/", StringComparison.Ordinal))
                {
                    response.StatusCode = 404;
                    response.ContentType = "application/problem+json";
                    await response.OutputStream.WriteAsync("""{"title":"no such object","status":404}"""u8.ToArray());
                }
                else if (path.StartsWith("/objects/bare/", StringComparison.Ordinal))
                {
                    response.StatusCode = 404;
                }
                else if (path.StartsWith("/objects/short/", StringComparison.Ordinal))
                {
                    await response.OutputStream.WriteAsync(new byte[] { 1, 2 });
                }
                else if (path.StartsWith("/objects/stall/", StringComparison.Ordinal))
                {
                    await Task.Delay(Timeout.Infinite, _stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                    return;
                }
                else
                {
                    await Task.Delay(20);
                    await response.OutputStream.WriteAsync(new byte[] { 1, 2, 3, 4 });
                }
                response.Close();
            });
        }
    }

    private DeviceReader Reader(TimeSpan timeout) => new(new EventStreams(null!, DataSource, _schema), new Clients(timeout));

    [Fact]
    public async Task only_the_devices_own_not_found_reads_as_zeros_and_a_bare_404_is_an_error_for_every_kind_of_read()
    {
        var reader = Reader(TimeSpan.FromSeconds(10));
        Assert.Null(await reader.ReadAsync("d0", "problem", 0, 4, CancellationToken.None));
        Assert.Null(await reader.ReadRangesAsync("d0", "problem", [0], [4], CancellationToken.None));
        Assert.Null(await reader.ChecksumsAsync("d0", "problem", 0, 1, CancellationToken.None));
        Assert.Null(await reader.AllocationAsync("d0", "problem", 0, 4096, CancellationToken.None));

        await Assert.ThrowsAsync<HttpRequestException>(() => reader.ReadAsync("d0", "bare", 0, 4, CancellationToken.None));
        await Assert.ThrowsAsync<HttpRequestException>(() => reader.ReadRangesAsync("d0", "bare", [0], [4], CancellationToken.None));
        await Assert.ThrowsAsync<HttpRequestException>(() => reader.ChecksumsAsync("d0", "bare", 0, 1, CancellationToken.None));
        await Assert.ThrowsAsync<HttpRequestException>(() => reader.AllocationAsync("d0", "bare", 0, 4096, CancellationToken.None));

        Assert.Equal([1, 2, 3, 4], await reader.ReadAsync("d0", "data", 0, 4, CancellationToken.None));
    }

    [Fact]
    public async Task an_answer_shorter_or_longer_than_the_read_is_an_error_never_bytes_handed_on()
    {
        var reader = Reader(TimeSpan.FromSeconds(10));
        await Assert.ThrowsAsync<HttpRequestException>(() => reader.ReadAsync("d0", "short", 0, 4, CancellationToken.None));
        await Assert.ThrowsAsync<HttpRequestException>(() => reader.ReadRangesAsync("d0", "short", [0], [4], CancellationToken.None));
        await Assert.ThrowsAsync<HttpRequestException>(() => reader.ReadAsync("d0", "data", 0, 2, CancellationToken.None));
    }

    [Fact]
    public async Task a_device_that_does_not_answer_in_time_is_a_timeout_and_only_the_callers_own_cancellation_is_a_cancellation()
    {
        var reader = Reader(TimeSpan.FromMilliseconds(500));
        var timeout = await Assert.ThrowsAsync<TimeoutException>(() => reader.ReadAsync("d0", "stall", 0, 4, CancellationToken.None));
        Assert.Contains("d0", timeout.Message, StringComparison.Ordinal);

        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => reader.ReadAsync("d0", "stall", 0, 4, cancel.Token));
    }

    [Fact]
    public async Task two_hundred_reads_at_once_look_the_devices_address_up_once_and_again_only_after_it_was_forgotten()
    {
        var reader = Reader(TimeSpan.FromSeconds(10));
        var reads = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => Task.Run(() => reader.ReadAsync("d0", "data", 0, 4, CancellationToken.None))));
        Assert.All(reads, r => Assert.Equal([1, 2, 3, 4], r));
        Assert.Equal(1L, await LookupsAsync());

        // Forgotten (a failed read elsewhere): the next reads look it up once more, together.
        reader.Forget("d0");
        await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => Task.Run(() => reader.ReadAsync("d0", "data", 0, 4, CancellationToken.None))));
        Assert.Equal(2L, await LookupsAsync());
    }

    [Fact]
    public async Task a_device_that_never_registered_is_an_error_and_is_looked_up_again_once_it_has()
    {
        var reader = Reader(TimeSpan.FromSeconds(10));
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => reader.ReadAsync("d9", "data", 0, 4, CancellationToken.None));
        Assert.Contains("never registered", error.Message, StringComparison.Ordinal);
        await ExecuteAsync($"INSERT INTO {_schema}.registered VALUES ('d9', '{_url}')");
        Assert.Equal([1, 2, 3, 4], await reader.ReadAsync("d9", "data", 0, 4, CancellationToken.None));
    }

    private async Task<long> LookupsAsync()
    {
        await using var cmd = DataSource.CreateCommand($"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {_schema}.lookups");
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    private static async Task ExecuteAsync(string sql)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        await cmd.ExecuteNonQueryAsync();
    }

    private sealed class Clients(TimeSpan timeout) : IHttpClientFactory
    {
        public HttpClient CreateClient(string name) => new() { Timeout = timeout };
    }
}
