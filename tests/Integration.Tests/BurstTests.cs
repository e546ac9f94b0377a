using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Requests by the hundred, all at once, at the controller and an agent: each answered as it should be, PostgreSQL left
/// room for another connection all along (every process of the cluster shares its <c>max_connections</c>: the
/// controller's lease, an agent's commit), and writes with a good key going on meanwhile with both mirrors in sync.
/// Each kind below once opened a connection per request in flight: the pool grew until the server refused connections
/// to everyone ("too many clients already"), the controller could not renew its lease and refused writes 503.
/// </summary>
public sealed class BurstTests
{
    /// <summary>
    /// Keys made up by the hundred, each with its own id (a scanner, or a client misconfigured on many hosts, so no
    /// per-source limit holds them back: the limit is off here). Each unknown id is a lookup of its own.
    /// </summary>
    [Fact]
    public async Task hundreds_of_made_up_keys_at_once_are_refused_401_and_leave_postgresql_room_for_everyone_else()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__AccessFailureLimit"] = "100000" });
        await cluster.CreateVolumeAsync("mine", 4096, 64);
        var targets = new[] { cluster.Controller.Url + "/volumes", cluster.Agent("d0").Url + "/status" };
        await BurstAsync(cluster, Enumerable.Range(0, 1800).Select(i =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, targets[i % targets.Length]);
            request.Headers.TryAddWithoutValidation("Authorization", $"Bearer tm_{i.ToString("x12", CultureInfo.InvariantCulture)}_{new string('A', 43)}");
            return (request, HttpStatusCode.Unauthorized);
        }));
    }

    /// <summary>
    /// A volume's status and a block's writers asked by the hundred with a good key (dashboards, a monitoring system
    /// polling many volumes, a script in a loop): each reads PostgreSQL.
    /// </summary>
    [Fact]
    public async Task hundreds_of_status_requests_at_once_are_answered_and_leave_postgresql_room_for_everyone_else()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("mine", 4096, 64);
        var paths = new[] { "/volumes/mine", "/volumes/mine/blocks/3/writer" };
        await BurstAsync(cluster, Enumerable.Range(0, 1200).Select(i =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, cluster.Controller.Url + paths[i % paths.Length]);
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + cluster.OperatorKey);
            return (request, HttpStatusCode.OK);
        }));
    }

    /// <summary>
    /// Sends every request at once (answered <c>expected</c> each) while 32 writes go to volume <c>mine</c> and a probe
    /// opens a connection of its own to PostgreSQL every 20 ms; then the volume must converge with every write on it.
    /// </summary>
    private static async Task BurstAsync(TestCluster cluster, IEnumerable<(HttpRequestMessage Request, HttpStatusCode Expected)> burst)
    {
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 2000 }) { Timeout = TimeSpan.FromSeconds(120) };
        var wrong = new ConcurrentBag<string>();
        var refusedConnections = new ConcurrentBag<string>();
        using var stop = new CancellationTokenSource();
        var probe = Task.Run(async () =>
        {
            var unpooled = TestCluster.Postgres + ";Pooling=false";
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await using var conn = new Npgsql.NpgsqlConnection(unpooled);
                    await conn.OpenAsync();
                }
                catch (Npgsql.NpgsqlException ex)
                {
                    refusedConnections.Add(ex.Message);
                }
                await Task.Delay(20);
            }
        });
        var writes = Task.Run(async () =>
        {
            for (var i = 0; i < 32; i++)
                await cluster.WriteAsync("mine", i, Block(i));
        });
        var requests = burst.Select(async item =>
        {
            using var request = item.Request;
            using var response = await http.SendAsync(request);
            if (response.StatusCode != item.Expected)
                wrong.Add($"{request.RequestUri!.AbsolutePath} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }).ToArray();
        await Task.WhenAll(requests);
        await writes;
        await stop.CancelAsync();
        await probe;

        Assert.True(wrong.IsEmpty, $"{wrong.Count} of {requests.Length} requests were not answered as expected: {string.Join("\n", wrong.Take(5))}");
        Assert.True(refusedConnections.IsEmpty, $"PostgreSQL refused {refusedConnections.Count} connections during the burst: {refusedConnections.FirstOrDefault()}");
        await cluster.WaitConvergedAsync("mine");
        for (var i = 0; i < 32; i++)
            Assert.Equal(Block(i), await cluster.ReadAsync("mine", i, 1));
    }

    private static byte[] Block(int i) => Enumerable.Repeat((byte)(i + 1), 4096).ToArray();
}
