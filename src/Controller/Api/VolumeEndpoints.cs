using System.Diagnostics;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Reads;
using TaggedMirror.Controller.Status;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.EventStore;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Api;

/// <summary>
/// The producers' API. Every refusal happens before a tag is taken, so a refused request changes nothing.
/// </summary>
internal static class VolumeEndpoints
{
    private const int MaxReadBlocksBytes = 16 * 1024 * 1024;

    public static void MapVolumeEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/volumes", CreateAsync);
        app.MapGet("/volumes", async (VolumeCatalog catalog, StatusService status, CancellationToken ct) =>
        {
            var list = new List<VolumeStatus>();
            foreach (var v in catalog.All) list.Add(await status.GetAsync(v, ct));
            return Results.Ok(list);
        });
        app.MapGet("/volumes/{name}", async (string name, VolumeCatalog catalog, StatusService status, CancellationToken ct) =>
            catalog.Find(name) is { } v ? Results.Ok(await status.GetAsync(v, ct)) : UnknownVolume(name));
        app.MapPut("/volumes/{name}/blocks/{firstBlock:long}", (string name, long firstBlock, string? wait, HttpRequest request,
                VolumeCatalog catalog, WritePipeline pipeline, ControllerOptions options, ControllerTelemetry telemetry, CancellationToken ct) =>
            TracedWriteAsync(name, TransactionKind.Write, firstBlock, wait, request, catalog, pipeline, options, telemetry, ct));
        app.MapPost("/volumes/{name}/append", (string name, string? wait, HttpRequest request,
                VolumeCatalog catalog, WritePipeline pipeline, ControllerOptions options, ControllerTelemetry telemetry, CancellationToken ct) =>
            TracedWriteAsync(name, TransactionKind.Append, 0, wait, request, catalog, pipeline, options, telemetry, ct));
        app.MapGet("/volumes/{name}/blocks/{firstBlock:long}", ReadAsync);
    }

    private static async Task<IResult> CreateAsync(CreateVolumeRequest? body, VolumeCatalog catalog, StatusService status, CancellationToken ct)
    {
        if (body is null) return ApiErrors.BadRequest("a JSON body {name, blockSize, blocks, mirrors} is required");
        if (!Names.IsValid(body.Name))
            return ApiErrors.BadRequest($"volume name '{body.Name}' is not valid: use 1 to 48 lower-case letters, digits or dashes");
        if (!BlockSizes.IsValid(body.BlockSize))
            return ApiErrors.BadRequest($"block size {body.BlockSize} is not a power of two from {BlockSizes.Min} to {BlockSizes.Max}");
        if (body.Blocks <= 0 || body.Blocks > (1L << 40) / body.BlockSize)
            return ApiErrors.BadRequest($"blocks must be from 1 to {(1L << 40) / body.BlockSize} (1 TiB)");
        var mirrors = body.Mirrors ?? [];
        if (mirrors.Length < 2)
            return ApiErrors.BadRequest("a mirrored volume needs two or more mirrors (device ids)");
        if (mirrors.Length > 8)
            return ApiErrors.BadRequest("at most 8 mirrors");
        if (mirrors.FirstOrDefault(d => !Names.IsValid(d)) is { } bad)
            return ApiErrors.BadRequest($"device id '{bad}' is not valid");
        if (mirrors.Distinct(StringComparer.Ordinal).Count() != mirrors.Length)
            return ApiErrors.BadRequest("each mirror must be on a different device");
        var min = body.MinMirrors ?? 1;
        if (min < 1 || min > mirrors.Length)
            return ApiErrors.BadRequest($"minMirrors must be from 1 to {mirrors.Length}");
        try
        {
            var v = await catalog.CreateAsync(new VolumeCreated(
                body.Name!, body.BlockSize, body.Blocks, min, [.. mirrors.Select(d => new MirrorPlacement(d, Names.ObjectId(body.Name!, d)))]), ct);
            return Results.Created($"/volumes/{v.Name}", await status.GetAsync(v, ct));
        }
        catch (StreamVersionConflictException)
        {
            return ApiErrors.Conflict($"volume {body.Name} already exists");
        }
    }

    /// <summary>
    /// The request span of a write: the root of its trace (or a child of the caller's, if it sent a
    /// <c>traceparent</c>), parent of one produce span per mirror copy.
    /// </summary>
    private static async Task<IResult> TracedWriteAsync(
        string name, TransactionKind kind, long firstBlock, string? wait, HttpRequest request,
        VolumeCatalog catalog, WritePipeline pipeline, ControllerOptions options, ControllerTelemetry telemetry, CancellationToken ct)
    {
        using var span = telemetry.Source.StartActivity(kind == TransactionKind.Append ? "volume append" : "volume write", ActivityKind.Server);
        if (span is { IsAllDataRequested: true })
        {
            span.SetTag("http.request.method", request.Method);
            span.SetTag("url.path", request.Path.Value);
            span.SetTag(TelemetryAttributes.Volume, name);
            span.SetTag(TelemetryAttributes.FirstBlock, firstBlock);
            span.SetTag("tm.bytes", request.ContentLength);
        }
        var result = await WriteAsync(name, kind, firstBlock, wait, request, catalog, pipeline, options, ct);
        if (span is not null && result is IStatusCodeHttpResult { StatusCode: { } code })
        {
            span.SetTag("http.response.status_code", code);
            if (code >= 400) span.SetStatus(ActivityStatusCode.Error, (result as Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult)?.ProblemDetails.Detail);
        }
        return result;
    }

    private static async Task<IResult> WriteAsync(
        string name, TransactionKind kind, long firstBlock, string? wait, HttpRequest request,
        VolumeCatalog catalog, WritePipeline pipeline, ControllerOptions options, CancellationToken ct)
    {
        if (catalog.Find(name) is not { } v) return UnknownVolume(name);
        if (!v.Owned) return ApiErrors.Conflict($"volume {name} is owned by another controller");
        var waitApplied = wait switch
        {
            null or "" or "log" => false,
            "applied" => true,
            _ => (bool?)null,
        };
        if (waitApplied is null) return ApiErrors.BadRequest($"wait must be 'log' (default) or 'applied', not '{wait}'");
        var length = request.ContentLength;
        if (length is null) return ApiErrors.BadRequest("Content-Length is required");
        if (length == 0) return ApiErrors.BadRequest("an empty write: send one or more whole blocks");
        if (length > options.MaxWriteBytes) return ApiErrors.TooLarge($"{length} bytes is more than the {options.MaxWriteBytes} one write may carry");
        if (length % v.BlockSize != 0)
            return ApiErrors.BadRequest($"{length} bytes is not a whole number of {v.BlockSize}-byte blocks");
        var blocks = length.Value / v.BlockSize;
        if (kind == TransactionKind.Write && (firstBlock < 0 || firstBlock + blocks > v.Blocks))
            return ApiErrors.BadRequest($"blocks [{firstBlock}, {firstBlock + blocks}) are outside volume {name}, which has {v.Blocks} blocks");

        // One array per write, shared by every mirror's copy: Confluent.Kafka 1.9 takes whole arrays only.
        var data = new byte[length.Value];
        var read = 0;
        while (read < data.Length)
        {
            var n = await request.Body.ReadAsync(data.AsMemory(read), ct);
            if (n == 0) return ApiErrors.BadRequest($"body ended after {read} of {data.Length} bytes");
            read += n;
        }
        try
        {
            return Results.Ok(await pipeline.WriteAsync(v, kind, firstBlock, data, waitApplied.Value, ct));
        }
        catch (WriteFailedException ex)
        {
            return ApiErrors.Unavailable(ex.Message);
        }
    }

    private static async Task<IResult> ReadAsync(string name, long firstBlock, int? count, VolumeCatalog catalog, VolumeReader reader, CancellationToken ct)
    {
        if (catalog.Find(name) is not { } v) return UnknownVolume(name);
        var blocks = count ?? 1;
        if (blocks <= 0) return ApiErrors.BadRequest("count must be at least 1");
        if ((long)blocks * v.BlockSize > MaxReadBlocksBytes) return ApiErrors.TooLarge($"one read may return at most {MaxReadBlocksBytes} bytes");
        if (firstBlock < 0 || firstBlock + blocks > v.TotalBlocks)
            return ApiErrors.BadRequest($"blocks [{firstBlock}, {firstBlock + blocks}) are outside volume {name}, which has {v.TotalBlocks} blocks");
        try
        {
            return Results.Bytes(await reader.ReadAsync(v, firstBlock, blocks, ct), "application/octet-stream");
        }
        catch (ReadFailedException ex)
        {
            return ApiErrors.Unavailable(ex.Message);
        }
    }

    private static IResult UnknownVolume(string name) => ApiErrors.NotFound($"no volume named '{name}'");
}
