using System.Globalization;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Controller.Status;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Http;

namespace TaggedMirror.Controller.Api;

/// <summary>
/// The operator's changes to a volume (<see cref="VolumeChanges"/>):
/// <c>POST /volumes/{name}/mirrors</c> {device} attaches a mirror (202: it is being copied to; follow <c>GET /volumes/{name}</c>),
/// <c>POST /volumes/{name}/mirrors/{device}/replace</c> {device} replaces one (202),
/// <c>DELETE /volumes/{name}/mirrors/{device}</c> detaches one (200),
/// <c>POST /volumes/{name}/grow</c> {blocks} grows the volume (200),
/// <c>DELETE /volumes/{name}</c> deletes it (200). Refusals (400, 404, 409, 503) change nothing.
/// </summary>
internal static class VolumeChangeEndpoints
{
    public static void MapVolumeChangeEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/volumes/{name}/mirrors", async (string name, HttpRequest request, VolumeChanges changes, StatusService status, CancellationToken ct) =>
        {
            var (body, refusal) = await JsonBodies.ReadAsync<MirrorRequest>(request, "{device}", "device is a string", ct);
            if (body is null) return refusal!;
            if (InvalidDevice(body.Device) is { } bad) return bad;
            return await RunAsync(async () =>
                Results.Accepted($"/volumes/{name}", await status.GetAsync(await changes.AttachAsync(name, body.Device!, replaces: null, ct), ct)));
        });
        app.MapPost("/volumes/{name}/mirrors/{device}/replace", async (string name, string device, HttpRequest request, VolumeChanges changes, StatusService status, CancellationToken ct) =>
        {
            var (body, refusal) = await JsonBodies.ReadAsync<MirrorRequest>(request, "{device} (the new mirror's device)", "device is a string", ct);
            if (body is null) return refusal!;
            if (InvalidDevice(body.Device) is { } bad) return bad;
            if (body.Device == device) return ApiErrors.BadRequest($"a mirror cannot replace itself: {device} already holds it");
            return await RunAsync(async () =>
                Results.Accepted($"/volumes/{name}", await status.GetAsync(await changes.AttachAsync(name, body.Device!, replaces: device, ct), ct)));
        });
        app.MapDelete("/volumes/{name}/mirrors/{device}", (string name, string device, VolumeChanges changes, StatusService status, CancellationToken ct) =>
            RunAsync(async () =>
            {
                var (v, removal) = await changes.DetachAsync(name, device, "detached by the operator", ct);
                return Results.Ok(new DetachResult(await status.GetAsync(v, ct), removal));
            }));
        app.MapPost("/volumes/{name}/grow", async (string name, HttpRequest request, VolumeChanges changes, StatusService status, CancellationToken ct) =>
        {
            var (body, refusal) = await JsonBodies.ReadAsync<GrowRequest>(request, "{blocks}", "blocks is a 64-bit whole number", ct);
            if (body is null) return refusal!;
            if (body.Blocks is not { } blocks || blocks <= 0)
                return ApiErrors.BadRequest($"blocks must be the volume's new size, a whole number above its current size, not {body.Blocks?.ToString(CultureInfo.InvariantCulture) ?? "missing"}");
            return await RunAsync(async () => Results.Ok(await status.GetAsync(await changes.GrowAsync(name, blocks, ct), ct)));
        });
        app.MapDelete("/volumes/{name}", (string name, VolumeChanges changes, CancellationToken ct) =>
            RunAsync(async () => Results.Ok(new DeleteResult(name, [.. await changes.DeleteAsync(name, ct)]))));
    }

    private static IResult? InvalidDevice(string? device) =>
        Names.IsValid(device) ? null : ApiErrors.BadRequest($"device id '{device}' is not valid: use 1 to 48 lower-case letters, digits or dashes");

    private static async Task<IResult> RunAsync(Func<Task<IResult>> change)
    {
        try
        {
            return await change();
        }
        catch (VolumeChangeRefusedException ex)
        {
            return Results.Problem(ex.Message, statusCode: ex.Status);
        }
        catch (TimeoutException ex)
        {
            return ApiErrors.Unavailable($"{ex.Message}; nothing was changed, try again");
        }
        catch (VolumeTakenOverException ex)
        {
            return ApiErrors.Conflict(ex.Message);
        }
        catch (Exception ex) when (ex is Polly.Timeout.TimeoutRejectedException || TransientErrors.IsTransient(ex) && ex is not OperationCanceledException)
        {
            return ApiErrors.Unavailable($"the metadata store is unreachable ({ex.Message}); check tm status before trying again");
        }
    }
}
