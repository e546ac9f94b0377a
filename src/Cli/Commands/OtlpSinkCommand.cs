using System.CommandLine;
using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Text.Json;
using Google.Protobuf;
using TaggedMirror.Cli.Otlp;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm otlp-sink</c>: accepts OTLP/HTTP exports (<c>/v1/traces</c>, <c>/v1/metrics</c>, <c>/v1/logs</c>), counts
/// them and keeps only the spans' durations by service and name, so the write benchmark can run with tracing on where
/// no trace viewer runs (no Docker here), and shows where a write's time goes stage by stage. What an exporter costs
/// the data path is then measured without a real backend's cost beside it. <c>GET /stats</c> answers the counts and
/// the span durations as JSON; both are printed when it stops.
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

    internal static async Task<int> RunAsync(int port, CancellationToken ct)
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
        var spans = new OtlpSpanStats();
        long refused = 0;
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
                body["refused"] = Interlocked.Read(ref refused);
                body["spans"] = spans.Summary();
                var json = JsonSerializer.SerializeToUtf8Bytes(body, JsonSerializerOptions.Web);
                context.Response.ContentType = "application/json";
                await context.Response.OutputStream.WriteAsync(json, ct);
                context.Response.Close();
                continue;
            }
            using var received = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(received, ct);
            var bytes = received.Length;
            lock (counts)
            {
                var (r, b) = counts.GetValueOrDefault(path);
                counts[path] = (r + 1, b + bytes);
            }
            var status = 200;
            if (path == "/v1/traces")
            {
                try
                {
                    spans.Add(Decompressed(received, context.Request.Headers["Content-Encoding"]));
                }
                catch (Exception ex) when (ex is InvalidProtocolBufferException or InvalidDataException)
                {
                    // A body that is not an export request: refused (the exporter drops it) and counted.
                    Interlocked.Increment(ref refused);
                    status = 400;
                }
            }
            // An empty Export*ServiceResponse: full success.
            context.Response.StatusCode = status;
            context.Response.ContentType = "application/x-protobuf";
            context.Response.Close();
        }
        lock (counts)
        {
            foreach (var (path, (r, b)) in counts)
                Console.Out.WriteLine($"otlp-sink: {path}: {r} requests, {b} bytes");
        }
        if (refused > 0) Console.Out.WriteLine($"otlp-sink: {refused} trace requests refused (not OTLP protobuf)");
        foreach (var summary in spans.Summary())
            Console.Out.WriteLine($"otlp-sink: {summary}");
        return 0;
    }

    private static byte[] Decompressed(MemoryStream body, string? encoding)
    {
        if (!string.Equals(encoding, "gzip", StringComparison.OrdinalIgnoreCase)) return body.ToArray();
        body.Position = 0;
        using var gzip = new GZipStream(body, CompressionMode.Decompress, leaveOpen: true);
        using var plain = new MemoryStream();
        gzip.CopyTo(plain);
        return plain.ToArray();
    }
}
