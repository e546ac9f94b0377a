using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using TaggedMirror.Cli.Commands;

namespace TaggedMirror.Cli.Tests;

/// <summary>
/// <c>tm otlp-sink</c> fed by OpenTelemetry's own OTLP/HTTP exporter (protobuf, over TCP): the span durations it
/// reports by service and name are those of the spans sent, and a body that is not OTLP is refused, counted, and does
/// not stop it.
/// </summary>
public sealed class OtlpSinkTests
{
    [Fact]
    public async Task spans_from_the_real_exporter_are_summarised_by_service_and_name_and_garbage_is_refused()
    {
        var port = FreePort();
        using var stop = new CancellationTokenSource();
        var sink = Task.Run(() => OtlpSinkCommand.RunAsync(port, stop.Token));
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
        await WaitForAsync(http);

        using var source = new ActivitySource("tm.test.otlp-sink");
        using (var tracing = Sdk.CreateTracerProviderBuilder()
                   .SetResourceBuilder(ResourceBuilder.CreateEmpty().AddService("tm-test-service"))
                   .AddSource(source.Name)
                   .AddOtlpExporter(o =>
                   {
                       o.Endpoint = new Uri($"http://127.0.0.1:{port}/v1/traces");
                       o.Protocol = OtlpExportProtocol.HttpProtobuf;
                       o.ExportProcessorType = ExportProcessorType.Simple;
                   })
                   .Build())
        {
            var start = DateTime.UtcNow;
            foreach (var ms in new[] { 1, 2, 3, 4, 100 })
            {
                using var write = source.StartActivity("write")!;
                write.SetStartTime(start);
                write.SetEndTime(start.AddMilliseconds(ms));
            }
            using (var apply = source.StartActivity("apply")!)
            {
                apply.SetStartTime(start);
                apply.SetEndTime(start.AddMilliseconds(7));
            }
            Assert.True(tracing.ForceFlush(10_000));
        }

        using (var garbage = new ByteArrayContent(Encoding.UTF8.GetBytes("not a protobuf message \xff\xff\xff")))
        {
            garbage.Headers.ContentType = new("application/x-protobuf");
            var refused = await http.PostAsync("v1/traces", garbage);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        }

        using var stats = JsonDocument.Parse(await http.GetStringAsync("stats"));
        Assert.Equal(1, stats.RootElement.GetProperty("refused").GetInt64());
        var spans = stats.RootElement.GetProperty("spans").EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!);
        Assert.Equal(["apply", "write"], spans.Keys.Order(StringComparer.Ordinal));
        var writes = spans["write"];
        Assert.Equal("tm-test-service", writes.GetProperty("service").GetString());
        Assert.Equal(5, writes.GetProperty("count").GetInt64());
        Assert.Equal(3.0, writes.GetProperty("p50Ms").GetDouble(), 3);
        Assert.Equal(100.0, writes.GetProperty("p99Ms").GetDouble(), 3);
        Assert.Equal(22.0, writes.GetProperty("meanMs").GetDouble(), 3);
        Assert.Equal(7.0, spans["apply"].GetProperty("maxMs").GetDouble(), 3);

        await stop.CancelAsync();
        Assert.Equal(0, await sink.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static async Task WaitForAsync(HttpClient http)
    {
        for (var i = 0; ; i++)
        {
            try
            {
                (await http.GetAsync("stats")).EnsureSuccessStatusCode();
                return;
            }
            catch (HttpRequestException) when (i < 100)
            {
                await Task.Delay(100);
            }
        }
    }
}
