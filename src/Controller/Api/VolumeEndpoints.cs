using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Controller.Access;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Reads;
using TaggedMirror.Controller.Status;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;
using TaggedMirror.Hosting.Http;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Api;

/// <summary>
/// The producers' API. Every refusal happens before a tag is taken, so a refused request changes nothing.
/// </summary>
internal static class VolumeEndpoints
{
    private const int MaxReadBlocksBytes = 16 * 1024 * 1024;
    private const long MaxVolumeBytes = VolumeChanges.MaxVolumeBytes;
    private const int MaxMirrors = VolumeChanges.MaxMirrors;

    public static void MapVolumeEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/volumes", CreateAsync);
        // A producer's key sees only the volumes it names: the others are not listed, and asking for one is refused
        // before it is looked up (access control), so whether it exists is not told either.
        app.MapGet("/volumes", async (HttpContext context, VolumeCatalog catalog, StatusService status, CancellationToken ct) =>
        {
            var principal = context.Principal();
            var list = new List<VolumeStatus>();
            foreach (var v in catalog.All)
            {
                if (principal.MayRead(v.Name)) list.Add(await status.GetAsync(v, ct));
            }
            return Results.Ok(list);
        }).Requires(AccessNeed.AnyKey);
        app.MapGet("/volumes/{name}", async (string name, VolumeCatalog catalog, StatusService status, CancellationToken ct) =>
            catalog.Find(name) is { } v ? Results.Ok(await status.GetAsync(v, ct)) : UnknownVolume(name)).Requires(AccessNeed.ReadVolume);
        // Block numbers and counts are taken as text and parsed here: a route constraint or a typed query value
        // that does not parse would answer 404 or an empty 400, never a sentence saying what was wrong.
        app.MapPut("/volumes/{name}/blocks/{firstBlock}", (string name, string firstBlock, string? wait, HttpRequest request,
                VolumeCatalog catalog, WritePipeline pipeline, ControllerOptions options, ControllerTelemetry telemetry, CancellationToken ct) =>
            TracedAsync("volume write", name, firstBlock, request.ContentLength, request, telemetry,
                () => WriteAsync(name, TransactionKind.Write, firstBlock, wait, request, catalog, pipeline, options, ct))).Requires(AccessNeed.WriteVolume);
        app.MapPost("/volumes/{name}/append", (string name, string? wait, HttpRequest request,
                VolumeCatalog catalog, WritePipeline pipeline, ControllerOptions options, ControllerTelemetry telemetry, CancellationToken ct) =>
            TracedAsync("volume append", name, null, request.ContentLength, request, telemetry,
                () => WriteAsync(name, TransactionKind.Append, null, wait, request, catalog, pipeline, options, ct))).Requires(AccessNeed.WriteVolume);
        app.MapPost("/volumes/{name}/blocks/{firstBlock}/zero", (string name, string firstBlock, string? count, string? wait, HttpRequest request,
                VolumeCatalog catalog, WritePipeline pipeline, ControllerTelemetry telemetry, CancellationToken ct) =>
            TracedAsync("volume zero", name, firstBlock, null, request, telemetry,
                () => ZeroAsync(name, firstBlock, count, wait, request, catalog, pipeline, ct))).Requires(AccessNeed.WriteVolume);
        app.MapGet("/volumes/{name}/blocks/{firstBlock}", ReadAsync).Requires(AccessNeed.ReadVolume);
        // Who last wrote a block, with which tag, and which mirrors applied it (docs/design.md, "Who wrote a block").
        app.MapGet("/volumes/{name}/blocks/{block}/writer", async (string name, string block, VolumeCatalog catalog, BlockWritersService writers, CancellationToken ct) =>
        {
            if (catalog.Find(name) is not { } v) return UnknownVolume(name);
            if (!TryParseBlock(block, out var n) || n < 0 || n >= v.TotalBlocks)
                return ApiErrors.BadRequest($"block number '{block}' is not a whole number from 0 to {v.TotalBlocks - 1}");
            try
            {
                return Results.Ok(await writers.GetAsync(v, n, ct));
            }
            catch (Exception ex) when (TransientErrors.IsTransient(ex))
            {
                return ApiErrors.Unavailable($"volume {name}: the metadata store is unreachable ({ex.Message}); try again");
            }
        }).Requires(AccessNeed.ReadVolume);
    }

    private static async Task<IResult> CreateAsync(
        HttpRequest request, VolumeCatalog catalog, StatusService status, Rebuild.RebuildService rebuilds, CancellationToken ct)
    {
        var (body, refusal) = await JsonBodies.ReadAsync<CreateVolumeRequest>(request, "{name, blockSize, blocks, mirrors, minMirrors?}",
            "blockSize and minMirrors are 32-bit whole numbers, blocks a 64-bit one, name a string, mirrors an array of strings", ct);
        if (body is null) return refusal!;
        if (!Names.IsValid(body.Name))
            return ApiErrors.BadRequest($"volume name '{body.Name}' is not valid: use 1 to 48 lower-case letters, digits or dashes");
        if (!BlockSizes.IsValid(body.BlockSize))
            return ApiErrors.BadRequest($"block size {body.BlockSize} is not a power of two from {BlockSizes.Min} to {BlockSizes.Max}");
        // Division, not blocks * blockSize: the product of a huge count overflows.
        if (body.Blocks is not { } count || count <= 0 || count > MaxVolumeBytes / body.BlockSize)
            return ApiErrors.BadRequest($"blocks must be from 1 to {MaxVolumeBytes / body.BlockSize} (1 TiB of {body.BlockSize}-byte blocks), not {body.Blocks?.ToString(CultureInfo.InvariantCulture) ?? "missing"}");
        var mirrors = body.Mirrors ?? [];
        if (mirrors.Length < 2)
            return ApiErrors.BadRequest("a mirrored volume needs two or more mirrors (device ids)");
        if (mirrors.Length > MaxMirrors)
            return ApiErrors.BadRequest($"at most {MaxMirrors} mirrors");
        foreach (var d in mirrors)
        {
            if (!Names.IsValid(d)) return ApiErrors.BadRequest($"device id '{d}' is not valid: use 1 to 48 lower-case letters, digits or dashes");
        }
        if (mirrors.Distinct(StringComparer.Ordinal).Count() != mirrors.Length)
            return ApiErrors.BadRequest("each mirror must be on a different device");
        var min = body.MinMirrors ?? 1;
        if (min < 1 || min > mirrors.Length)
            return ApiErrors.BadRequest($"minMirrors must be from 1 to {mirrors.Length}");
        foreach (var d in mirrors)
        {
            // A device whose agent never started (a typo, most often) would hold a mirror shown in sync that nothing
            // applies: refused, as an attach to it is.
            if (!await rebuilds.DeviceRegisteredAsync(d, ct))
                return ApiErrors.NotFound($"no device named {d} has registered: start its agent first (Agent__DeviceId={d})");
            // A device being rebuilt would replay nothing of the new volume's writes before it began, yet hold its mirror as in sync.
            if (await rebuilds.RunningAsync(d, ct) is { } running)
                return ApiErrors.Conflict($"device {d} is being rebuilt (rebuild {running}); create the volume once it is done");
        }
        try
        {
            var v = await catalog.CreateAsync(new VolumeCreated(
                body.Name!, body.BlockSize, count, min, [.. mirrors.Select(d => new MirrorPlacement(d, Names.ObjectId(body.Name!, d)))]), ct);
            return Results.Created($"/volumes/{v.Name}", await status.GetAsync(v, ct));
        }
        catch (StreamVersionConflictException)
        {
            return ApiErrors.Conflict(await catalog.WasDeletedAsync(body.Name!, ct)
                ? $"volume {body.Name} was deleted; a deleted volume's name is not used again (devices may still hold its removal in their logs)"
                : $"volume {body.Name} already exists");
        }
    }

    /// <summary>
    /// The request span of a write, an append or a zero (<paramref name="operation"/>): the root of its trace (or a
    /// child of the caller's, if it sent a <c>traceparent</c>), parent of one produce span per mirror copy.
    /// </summary>
    private static async Task<IResult> TracedAsync(
        string operation, string name, string? firstBlock, long? bytes, HttpRequest request, ControllerTelemetry telemetry, Func<Task<IResult>> handle)
    {
        using var span = telemetry.Source.StartActivity(operation, ActivityKind.Server);
        if (span is { IsAllDataRequested: true })
        {
            span.SetTag("http.request.method", request.Method);
            span.SetTag("url.path", request.Path.Value);
            span.SetTag(TelemetryAttributes.Volume, name);
            if (firstBlock is not null) span.SetTag(TelemetryAttributes.FirstBlock, firstBlock);
            if (bytes is not null) span.SetTag("tm.bytes", bytes);
        }
        var result = await handle();
        if (span is not null && result is IStatusCodeHttpResult { StatusCode: { } code })
        {
            span.SetTag("http.response.status_code", code);
            if (code >= 400) span.SetStatus(ActivityStatusCode.Error, (result as Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult)?.ProblemDetails.Detail);
        }
        return result;
    }

    /// <summary>The most one zero request covers: NBD's pieces too (a client zeroes more in several requests).</summary>
    public const long MaxZeroBytes = 1L << 30;

    /// <summary>
    /// Zeroes <paramref name="count"/> blocks (default 1) from <paramref name="lba"/>: one tagged zero per mirror,
    /// carrying no data (<see cref="TransactionKind.Zero"/>), answered like a write.
    /// </summary>
    private static async Task<IResult> ZeroAsync(
        string name, string lba, string? count, string? wait, HttpRequest request, VolumeCatalog catalog, WritePipeline pipeline, CancellationToken ct)
    {
        if (catalog.Find(name) is not { } v) return UnknownVolume(name);
        if (ParseRange(name, lba, count, v.BlockSize, MaxZeroBytes, v.Blocks, "zero may cover", out var first, out var blocks) is { } refused) return refused;
        if (ParseWait(wait) is not { } waitApplied) return ApiErrors.BadRequest($"wait must be 'log' (default) or 'applied', not '{wait}'");
        if (!v.Owned) return ApiErrors.Conflict($"volume {name} is owned by another controller");
        return await AnswerAsync(name, () => pipeline.ZeroAsync(v, first, (int)blocks, waitApplied, WriteOrigin.Key(request.HttpContext.Principal().KeyId), ct));
    }

    private static bool? ParseWait(string? wait) => wait switch
    {
        null or "" or "log" => false,
        "applied" => true,
        _ => null,
    };

    private static async Task<IResult> WriteAsync(
        string name, TransactionKind kind, string? lba, string? wait, HttpRequest request,
        VolumeCatalog catalog, WritePipeline pipeline, ControllerOptions options, CancellationToken ct)
    {
        if (catalog.Find(name) is not { } v) return UnknownVolume(name);
        long firstBlock = 0;
        if (kind == TransactionKind.Write && !TryParseBlock(lba, out firstBlock))
            return ApiErrors.BadRequest($"block number '{lba}' is not a whole number from 0 to {v.Blocks - 1}");
        if (!v.Owned) return ApiErrors.Conflict($"volume {name} is owned by another controller");
        var waitApplied = ParseWait(wait);
        if (waitApplied is null) return ApiErrors.BadRequest($"wait must be 'log' (default) or 'applied', not '{wait}'");
        var length = request.ContentLength;
        if (length is null) return ApiErrors.BadRequest("Content-Length is required");
        if (length == 0) return ApiErrors.BadRequest("an empty write: send one or more whole blocks");
        if (length > options.MaxWriteBytes) return ApiErrors.TooLarge($"{length} bytes is more than the {options.MaxWriteBytes} one write may carry");
        if (length % v.BlockSize != 0)
            return ApiErrors.BadRequest($"{length} bytes is not a whole number of {v.BlockSize}-byte blocks");
        var blocks = length.Value / v.BlockSize;
        if (kind == TransactionKind.Write && !InRange(firstBlock, blocks, v.Blocks))
            return Outside(name, firstBlock, blocks, v.Blocks);

        // One array per write, shared by every mirror's copy: Confluent.Kafka 1.9 takes whole arrays only.
        var data = new byte[length.Value];
        var read = 0;
        while (read < data.Length)
        {
            var n = await request.Body.ReadAsync(data.AsMemory(read), ct);
            if (n == 0) return ApiErrors.BadRequest($"body ended after {read} of {data.Length} bytes");
            read += n;
        }
        return await AnswerAsync(name, () => pipeline.WriteAsync(v, kind, firstBlock, data, waitApplied.Value, WriteOrigin.Key(request.HttpContext.Principal().KeyId), ct));
    }

    /// <summary>A write's or a zero's answer, its failures told as the API tells them.</summary>
    private static async Task<IResult> AnswerAsync(string name, Func<Task<WriteResult>> send)
    {
        try
        {
            return Results.Ok(await send());
        }
        catch (WriteFailedException ex)
        {
            return ApiErrors.Unavailable(ex.Message);
        }
        catch (VolumeChangedException)
        {
            // Deleted while the write waited (a change of shape that left the volume in place restarts the write instead).
            return UnknownVolume(name);
        }
        catch (VolumeTakenOverException ex)
        {
            // Found out while reserving an append's blocks, before any tag was taken: nothing happened.
            return ApiErrors.Conflict(ex.Message);
        }
        catch (Exception ex) when (ex is Polly.Timeout.TimeoutRejectedException || TransientErrors.IsTransient(ex))
        {
            // PostgreSQL away (an append's reservation, a state record): the write's fate is unknown, like any 503.
            return ApiErrors.Unavailable($"volume {name}: the metadata store is unreachable ({ex.Message}); try again");
        }
    }

    private static async Task<IResult> ReadAsync(string name, string firstBlock, string? count, VolumeCatalog catalog, VolumeReader reader, CancellationToken ct)
    {
        if (catalog.Find(name) is not { } v) return UnknownVolume(name);
        if (ParseRange(name, firstBlock, count, v.BlockSize, MaxReadBlocksBytes, v.TotalBlocks, "read may return", out var first, out var blocks) is { } refused) return refused;
        try
        {
            return Results.Bytes(await reader.ReadAsync(v, first, (int)blocks, ct), "application/octet-stream");
        }
        catch (ReadFailedException ex)
        {
            return ApiErrors.Unavailable(ex.Message);
        }
        catch (Exception ex) when (TransientErrors.IsTransient(ex) && ex is not OperationCanceledException)
        {
            // A read checks how far the mirror applied its log, which PostgreSQL records.
            return ApiErrors.Unavailable($"volume {name}: the metadata store is unreachable ({ex.Message}); try again");
        }
    }

    /// <summary>
    /// Blocks [<paramref name="lba"/>, +<paramref name="count"/>) (count default 1) parsed, at most <paramref name="maxBytes"/>
    /// of them, within [0, <paramref name="limit"/>): the refusal, or null.
    /// </summary>
    private static IResult? ParseRange(
        string name, string lba, string? count, int blockSize, long maxBytes, long limit, string what, out long first, out long blocks)
    {
        blocks = 1;
        if (!TryParseBlock(lba, out first))
            return ApiErrors.BadRequest($"block number '{lba}' is not a whole number from 0 to {limit - 1}");
        var maxCount = maxBytes / blockSize;
        if (count is not null && !TryParseBlock(count, out blocks))
            return ApiErrors.BadRequest($"count '{count}' is not a whole number from 1 to {maxCount}");
        if (blocks <= 0) return ApiErrors.BadRequest($"count must be at least 1, not {blocks}");
        // Compared as a count, not as count * blockSize, which overflows for a huge count.
        if (blocks > maxCount) return ApiErrors.TooLarge($"one {what} at most {maxBytes} bytes ({maxCount} blocks), not {blocks} blocks");
        return InRange(first, blocks, limit) ? null : Outside(name, first, blocks, limit);
    }

    private static IResult UnknownVolume(string name) => ApiErrors.NotFound($"no volume named '{name}'");

    /// <summary>Digits with an optional sign, within a long; anything else (a fraction, an exponent, 20 digits) is refused.</summary>
    private static bool TryParseBlock(string? text, out long value) =>
        long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);

    /// <summary>
    /// [first, first + blocks) lies within [0, limit). Written without first + blocks, which overflows for a first
    /// block near long.MaxValue and would let a write past the end through (it was accepted, never applied, and
    /// every later read and resync of the volume waited for it).
    /// </summary>
    private static bool InRange(long first, long blocks, long limit) => blocks > 0 && first >= 0 && first <= limit - blocks;

    private static IResult Outside(string name, long first, long blocks, long limit) =>
        ApiErrors.BadRequest($"blocks [{first}, {(Int128)first + blocks}) are outside volume {name}, which has {limit} blocks");
}
