using System.Globalization;
using System.Net;
using System.Text.Json;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// <c>/health/live</c> and <c>/health/ready</c> on the controller and every agent: readiness names each dependency
/// (PostgreSQL, the bus, the Kafka log) and answers 503 while one is down; liveness never depends on them.
/// </summary>
public sealed class HealthTests
{
    private const string NotHealthy = "NotHealthy";

    private static readonly string[] ReadyChecks = ["bus", "kafka", "postgresql"];

    [Fact]
    public async Task every_service_is_live_and_ready_with_everything_up_and_ready_names_kafka_while_every_broker_is_down()
    {
        await using var cluster = await TestCluster.StartAsync();
        var services = new[] { cluster.Controller }.Concat(cluster.Devices.Select(cluster.Agent)).ToList();
        foreach (var s in services)
        {
            await WaitReadyAsync(cluster, s, HttpStatusCode.OK, "Healthy");
            var (status, ready) = await GetAsync(cluster, s.Url + "/health/ready");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal(ReadyChecks, ready.Checks.Select(c => c.Name).Order(StringComparer.Ordinal));
            Assert.All(ready.Checks, c => Assert.Equal("Healthy", c.Status));
            await AssertLiveAsync(cluster, s);
        }

        // Every broker of the log goes away: the services stay up (live) but are not ready, naming the log.
        for (var b = 1; b <= cluster.Kafka.BrokerCount; b++) cluster.Kafka.SetBrokerDown(b);
        foreach (var s in services)
        {
            var ready = await WaitReadyAsync(cluster, s, HttpStatusCode.ServiceUnavailable, "Unhealthy");
            Assert.Equal("Unhealthy", Check(ready, "kafka").Status);
            Assert.Equal("Healthy", Check(ready, "postgresql").Status);
            await AssertLiveAsync(cluster, s);
        }
        for (var b = 1; b <= cluster.Kafka.BrokerCount; b++) cluster.Kafka.SetBrokerUp(b);
        foreach (var s in services)
        {
            await WaitReadyAsync(cluster, s, HttpStatusCode.OK, "Healthy");
            await AssertLiveAsync(cluster, s);
        }
    }

    [Fact]
    public async Task the_controller_is_not_ready_naming_postgresql_while_its_connection_is_cut_and_ready_again_after_while_it_stays_live()
    {
        await using var pg = new TcpProxy("127.0.0.1", 5432);
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new()
        {
            // The controller reaches PostgreSQL through a relay the test can cut; the agents directly.
            ["TaggedMirror__Postgres"] = $"Host=127.0.0.1;Port={pg.Port};Username=tm;Password=tm;Database=tm;Timeout=3;Command Timeout=3",
        });
        var controller = cluster.Controller;
        await WaitReadyAsync(cluster, controller, HttpStatusCode.OK, "Healthy");
        await AssertLiveAsync(cluster, controller);

        pg.Block();
        var down = await WaitReadyAsync(cluster, controller, HttpStatusCode.ServiceUnavailable, "Unhealthy");
        Assert.Equal("Unhealthy", Check(down, "postgresql").Status);
        Assert.Equal("Healthy", Check(down, "kafka").Status);
        Assert.Equal("Healthy", Check(down, "bus").Status);
        // Liveness asks no dependency: an orchestrator must not restart a controller because PostgreSQL is away.
        for (var i = 0; i < 5; i++)
        {
            await AssertLiveAsync(cluster, controller);
            await Task.Delay(500);
        }
        // The agents reach PostgreSQL directly and stay ready.
        foreach (var d in cluster.Devices) await WaitReadyAsync(cluster, cluster.Agent(d), HttpStatusCode.OK, "Healthy");

        pg.Unblock();
        var up = await WaitReadyAsync(cluster, controller, HttpStatusCode.OK, "Healthy");
        Assert.All(up.Checks, c => Assert.Equal("Healthy", c.Status));
        await AssertLiveAsync(cluster, controller);
    }

    [Fact]
    public async Task an_agent_cut_off_from_the_bus_is_not_ready_naming_the_bus_and_ready_again_once_it_reconnects()
    {
        await using var rabbit = TcpProxy.ToRabbitMq();
        await using var cluster = await TestCluster.StartAsync(
            processEnvironment: p => p == "agent-d1"
                ? new Dictionary<string, string>
                {
                    ["TaggedMirror__RabbitMqHost"] = "127.0.0.1",
                    ["TaggedMirror__RabbitMqPort"] = rabbit.Port.ToString(CultureInfo.InvariantCulture),
                }
                : []);
        var d1 = cluster.Agent("d1");
        await WaitReadyAsync(cluster, d1, HttpStatusCode.OK, "Healthy");

        rabbit.Block();
        var down = await WaitReadyAsync(cluster, d1, HttpStatusCode.ServiceUnavailable, NotHealthy);
        Assert.NotEqual("Healthy", Check(down, "bus").Status);
        Assert.Equal("Healthy", Check(down, "postgresql").Status);
        await AssertLiveAsync(cluster, d1);
        await WaitReadyAsync(cluster, cluster.Agent("d0"), HttpStatusCode.OK, "Healthy");

        rabbit.Unblock();
        await WaitReadyAsync(cluster, d1, HttpStatusCode.OK, "Healthy");
        await AssertLiveAsync(cluster, d1);
    }

    private static HealthCheckAnswer Check(HealthAnswer answer, string name) => Assert.Single(answer.Checks, c => c.Name == name);

    private static async Task AssertLiveAsync(TestCluster cluster, ServiceProcess service)
    {
        var (status, live) = await GetAsync(cluster, service.Url + "/health/live");
        Assert.Equal((HttpStatusCode.OK, "Healthy"), (status, live.Status));
        Assert.Equal("process", Assert.Single(live.Checks).Name);
    }

    /// <summary>
    /// Polls <c>/health/ready</c> until it answers <paramref name="status"/> with that overall <paramref name="health"/>
    /// (<c>NotHealthy</c>: Degraded or Unhealthy, as MassTransit reports a bus that is reconnecting as Degraded).
    /// </summary>
    private static async Task<HealthAnswer> WaitReadyAsync(TestCluster cluster, ServiceProcess service, HttpStatusCode status, string health)
    {
        (HttpStatusCode Status, HealthAnswer Answer)? last = null;
        await Eventually.TrueAsync(async () =>
            {
                last = await GetAsync(cluster, service.Url + "/health/ready");
                return last.Value.Status == status
                    && (health == NotHealthy ? last.Value.Answer.Status is "Degraded" or "Unhealthy" : last.Value.Answer.Status == health);
            },
            TimeSpan.FromSeconds(60),
            () => $"{service.Name}: /health/ready did not answer {(int)status} {health}; last {(int?)last?.Status} {JsonSerializer.Serialize(last?.Answer)}\n{service.Tail()}");
        return last!.Value.Answer;
    }

    private static async Task<(HttpStatusCode Status, HealthAnswer Answer)> GetAsync(TestCluster cluster, string url)
    {
        using var r = await cluster.Http.GetAsync(new Uri(url));
        var body = await r.Content.ReadAsStringAsync();
        Assert.Equal("application/json", r.Content.Headers.ContentType?.MediaType);
        return (r.StatusCode, JsonSerializer.Deserialize<HealthAnswer>(body, JsonSerializerOptions.Web)!);
    }
}
