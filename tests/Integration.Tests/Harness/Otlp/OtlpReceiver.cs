using System.IO.Compression;
using System.Net;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace TaggedMirror.Integration.Tests.Harness.Otlp;

/// <summary>
/// An OTLP/HTTP collector stand-in: accepts <c>http/protobuf</c> POSTs to <c>/v1/traces</c> and <c>/v1/metrics</c> from
/// the processes under test and keeps what they sent, so a test can assert on real exported telemetry.
/// Bodies are parsed by messages generated from the vendored opentelemetry-proto files (<see cref="OtlpDecoder"/>).
/// Built on an empty Kestrel host: no configuration files, no logging providers, so it neither prints nor picks up
/// settings from the test's working directory. Failures are kept in <see cref="DecodeErrors"/> instead.
/// </summary>
internal sealed class OtlpReceiver : IAsyncDisposable
{
    private const string Protobuf = "application/x-protobuf";

    private readonly WebApplication _app;
    private readonly Lock _lock = new();
    private readonly List<ReceivedSpan> _spans = [];
    private readonly List<ReceivedMetricPoint> _points = [];
    private readonly List<string> _errors = [];
    private int _traceRequests;
    private int _metricRequests;

    private OtlpReceiver(WebApplication app)
    {
        _app = app;
    }

    /// <summary>Base address, e.g. <c>http://127.0.0.1:41234/</c>; the exporter appends <c>v1/traces</c> and <c>v1/metrics</c>.</summary>
    public Uri Endpoint { get; private set; } = null!;

    public IReadOnlyList<ReceivedSpan> Spans
    {
        get { lock (_lock) return [.. _spans]; }
    }

    public IReadOnlyList<ReceivedMetricPoint> MetricPoints
    {
        get { lock (_lock) return [.. _points]; }
    }

    /// <summary>Requests that failed: undecodable bodies, wrong content type or encoding. A clean run has none.</summary>
    public IReadOnlyList<string> DecodeErrors
    {
        get { lock (_lock) return [.. _errors]; }
    }

    /// <summary>Trace export requests decoded and stored.</summary>
    public int TraceRequests
    {
        get { lock (_lock) return _traceRequests; }
    }

    /// <summary>Metric export requests decoded and stored.</summary>
    public int MetricRequests
    {
        get { lock (_lock) return _metricRequests; }
    }

    public static async Task<OtlpReceiver> StartAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var receiver = new OtlpReceiver(app);
        app.Run(receiver.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException("Kestrel reported no bound address");
        receiver.Endpoint = new Uri(address.TrimEnd('/') + "/");
        return receiver;
    }

    /// <summary>
    /// The settings a child process needs to export here, quickly: spans every 200 ms (OTEL_BSP_SCHEDULE_DELAY)
    /// and metrics every 500 ms (OTEL_METRIC_EXPORT_INTERVAL) instead of the SDK's 5 s and 60 s.
    /// </summary>
    public IReadOnlyDictionary<string, string> ExporterEnvironment(string serviceName) => new Dictionary<string, string>
    {
        ["OTEL_EXPORTER_OTLP_ENDPOINT"] = Endpoint.GetLeftPart(UriPartial.Authority),
        ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
        ["OTEL_SERVICE_NAME"] = serviceName,
        ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
        ["OTEL_METRIC_EXPORT_INTERVAL"] = "500",
    };

    /// <summary>Forgets everything received so far, errors and request counts included.</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _spans.Clear();
            _points.Clear();
            _errors.Clear();
            _traceRequests = 0;
            _metricRequests = 0;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var traces = request.Path == "/v1/traces";
        if (!traces && request.Path != "/v1/metrics")
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        if (!HttpMethods.IsPost(request.Method))
        {
            context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            return;
        }
        var encoding = request.Headers.ContentEncoding.ToString();
        var gzip = encoding.Equals("gzip", StringComparison.OrdinalIgnoreCase);
        if (request.ContentType?.StartsWith(Protobuf, StringComparison.OrdinalIgnoreCase) != true
            || !(gzip || encoding.Length == 0 || encoding.Equals("identity", StringComparison.OrdinalIgnoreCase)))
        {
            Remember($"{request.Path}: unsupported content type '{request.ContentType}' or encoding '{encoding}'");
            context.Response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
            return;
        }

        using var body = new MemoryStream();
        try
        {
            if (gzip)
            {
                await using var unzip = new GZipStream(request.Body, CompressionMode.Decompress, leaveOpen: true);
                await unzip.CopyToAsync(body, context.RequestAborted);
            }
            else
            {
                await request.Body.CopyToAsync(body, context.RequestAborted);
            }
            var bytes = body.GetBuffer().AsSpan(0, (int)body.Length);
            if (traces)
            {
                var spans = OtlpDecoder.DecodeTraces(bytes);
                lock (_lock)
                {
                    _spans.AddRange(spans);
                    _traceRequests++;
                }
            }
            else
            {
                var points = OtlpDecoder.DecodeMetrics(bytes);
                lock (_lock)
                {
                    _points.AddRange(points);
                    _metricRequests++;
                }
            }
        }
        catch (Exception ex) when (ex is InvalidProtocolBufferException or InvalidDataException)
        {
            // InvalidDataException: GZipStream's report of a corrupt stream.
            Remember($"{request.Path}: {ex.Message}");
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return;
        }

        // An empty Export*ServiceResponse: no partial_success, so the exporter counts the batch as delivered.
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = Protobuf;
        context.Response.ContentLength = 0;
    }

    private void Remember(string error)
    {
        lock (_lock) _errors.Add(error);
    }
}
