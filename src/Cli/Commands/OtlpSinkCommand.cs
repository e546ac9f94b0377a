using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text.Json;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm otlp-sink</c>: accepts OTLP/HTTP exports (<c>/v1/traces</c>, <c>/v1/metrics</c>, <c>/v1/logs</c>) and
/// only counts them, so the write benchmark can run with tracing on where no trace viewer runs (no Docker
/// here). What an exporter costs the data path is then measured without a real backend's cost beside it.
/// <c>GET /stats</c> answers the counts as JSON.
/// </summary>
internal static class OtlpSinkCommand
{
    public static Command Create()
    {
        var port = new Option<int>("--port") { Description = "Port on 127.0.0.1 to listen on", DefaultValueFactory = _ => 4318 };
        var command = new Command("otlp-sink", "Accept and count OTLP/HTTP exports (for benchmarking with tracing on) until Ctrl-C or SIGTERM") { port };
        command.SetAction((parse, ct) => Program.RunAsync(() => RunAsync(parse.GetValue(port), ct)));
        return command;
    }

    private static async Task<int> RunAsync(int port, CancellationToken ct)
    {
        if (port is < 1 or > 65535) throw new CliException($"--port {port} is not a TCP port");
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/");
        try
        {
            listener.Start();
        }
        catch (HttpListenerException ex)
        {
            throw new CliException($"cannot listen on 127.0.0.1:{port}: {ex.Message}");
        }
        var counts = new Dictionary<string, (long Requests, long Bytes)>(StringComparer.Ordinal);
        Console.Out.WriteLine($"otlp-sink: listening on http://127.0.0.1:{port}");
        using var stop = ct.Register(listener.Stop);
        while (!ct.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException && ct.IsCancellationRequested)
            {
                break;
            }
            var path = context.Request.Url?.AbsolutePath ?? "/";
            if (context.Request.HttpMethod == "GET" && path == "/stats")
            {
                Dictionary<string, object> body;
                lock (counts) body = counts.ToDictionary(kv => kv.Key, kv => (object)new { requests = kv.Value.Requests, bytes = kv.Value.Bytes });
                var json = JsonSerializer.SerializeToUtf8Bytes(body);
                context.Response.ContentType = "application/json";
                await context.Response.OutputStream.WriteAsync(json, ct);
                context.Response.Close();
                continue;
            }
            long bytes = 0;
            var buffer = new byte[64 * 1024];
            int n;
            while ((n = await context.Request.InputStream.ReadAsync(buffer, ct)) > 0) bytes += n;
            lock (counts)
            {
                var (r, b) = counts.GetValueOrDefault(path);
                counts[path] = (r + 1, b + bytes);
            }
            // An empty Export*ServiceResponse: full success.
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/x-protobuf";
            context.Response.Close();
        }
        lock (counts)
        {
            foreach (var (path, (r, b)) in counts)
                Console.Out.WriteLine($"otlp-sink: {path}: {r} requests, {b} bytes");
        }
        return 0;
    }
}
