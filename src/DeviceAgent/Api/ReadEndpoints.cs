using System.Buffers;
using TaggedMirror.DeviceAgent.BlockStore;
using TaggedMirror.Hosting.Http;

namespace TaggedMirror.DeviceAgent.Api;

/// <summary>Reads for the controller and for resync. Reads see what the apply loop has written and flushed.</summary>
internal static class ReadEndpoints
{
    private const int MaxReadBytes = Contracts.Api.RangeRead.MaxBytes;

    public static void MapReadEndpoints(this IEndpointRouteBuilder app, string deviceId)
    {
        app.MapGet("/status", (DeviceStatus status) => Results.Json(status.Snapshot(deviceId)));

        app.MapGet("/objects/{objectId}/data", async (string objectId, long offset, int length, DeviceStatus status, ObjectFiles files, HttpResponse response, CancellationToken ct) =>
        {
            var obj = status.Object(objectId);
            if (obj is null)
                return Results.Problem($"object {objectId} is not on device {deviceId}", statusCode: 404);
            // Past the object's recorded end reads as zeros: the controller may have reserved extension blocks
            // whose append this device has not applied (or that never happened); the controller bounds reads.
            if (offset < 0 || length <= 0 || length > MaxReadBytes || offset % obj.BlockSize != 0)
                return Results.Problem($"range [{offset}, {offset + length}) of {objectId} is not block-aligned, negative or longer than {MaxReadBytes} bytes", statusCode: 400);
            return await AnswerAsync(files, objectId, [offset], [length], response, ct);
        });

        // For a resync batch: several ranges of one object in one request (one request per range was most of a
        // 200-range resync's time on the source's side). The bytes come back one range after the other.
        app.MapPost("/objects/{objectId}/ranges", async (string objectId, HttpRequest http, DeviceStatus status, ObjectFiles files, HttpResponse response, CancellationToken ct) =>
        {
            var obj = status.Object(objectId);
            if (obj is null)
                return Results.Problem($"object {objectId} is not on device {deviceId}", statusCode: 404);
            var (request, refusal) = await JsonBodies.ReadAsync<Contracts.Api.RangeRead>(http, "{offsets: [byte offsets], lengths: [byte counts]}",
                "offsets are 64-bit and lengths 32-bit whole numbers", ct);
            if (refusal is not null) return refusal;
            if (request!.Invalid(obj.BlockSize) is { } why)
                return Results.Problem($"ranges of {objectId}: {why}", statusCode: 400);
            return await AnswerAsync(files, objectId, request.Offsets, request.Lengths, response, ct);
        });

        // For NBD's BLOCK_STATUS: where the range holds data and where it reads as zeros (holes), as the file system says.
        app.MapGet("/objects/{objectId}/allocation", (string objectId, long offset, long length, DeviceStatus status, ObjectFiles files) =>
        {
            var obj = status.Object(objectId);
            if (obj is null)
                return Results.Problem($"object {objectId} is not on device {deviceId}", statusCode: 404);
            if (offset < 0 || length <= 0 || offset % obj.BlockSize != 0 || offset > long.MaxValue - length)
                return Results.Problem($"range [{offset}, +{length}) of {objectId} is not block-aligned, negative, empty or past a 64-bit offset", statusCode: 400);
            var (data, until) = files.DataRanges(objectId, offset, length, Contracts.Api.ObjectAllocation.MaxRanges);
            return Results.Json(new Contracts.Api.ObjectAllocation([.. data.Select(d => d.Offset)], [.. data.Select(d => d.Length)], until));
        });

        // For tm verify: the checksum of each block as it is now and as it was written (BlockStore/ObjectFiles).
        app.MapGet("/objects/{objectId}/checksums", (string objectId, long firstBlock, int count, DeviceStatus status, ObjectFiles files) =>
        {
            var obj = status.Object(objectId);
            if (obj is null)
                return Results.Problem($"object {objectId} is not on device {deviceId}", statusCode: 404);
            if (firstBlock < 0 || count <= 0 || count > Contracts.Api.BlockChecksums.MaxBlocks || firstBlock > long.MaxValue / obj.BlockSize - count)
                return Results.Problem($"blocks [{firstBlock}, +{count}) of {objectId}: the first must be at least 0 and the count 1 to {Contracts.Api.BlockChecksums.MaxBlocks}", statusCode: 400);
            var (actual, recorded) = files.Checksums(objectId, firstBlock, count, obj.BlockSize);
            return Results.Json(new Contracts.Api.BlockChecksums(obj.BlockSize, firstBlock, actual, recorded));
        });
    }

    /// <summary>Answers the ranges' bytes one after the other (checked by the caller: at most <see cref="MaxReadBytes"/> in all).</summary>
    private static async Task<IResult> AnswerAsync(ObjectFiles files, string objectId, long[] offsets, int[] lengths, HttpResponse response, CancellationToken ct)
    {
        var total = lengths.Sum();
        var buffer = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            var at = 0;
            for (var i = 0; i < offsets.Length; i++)
            {
                files.Read(objectId, offsets[i], buffer.AsSpan(at, lengths[i]));
                at += lengths[i];
            }
            response.ContentType = "application/octet-stream";
            response.ContentLength = total;
            await response.Body.WriteAsync(buffer.AsMemory(0, total), ct);
            return Results.Empty;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
