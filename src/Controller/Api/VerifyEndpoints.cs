using System.Globalization;
using TaggedMirror.Controller.Access;
using TaggedMirror.Controller.Verify;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller.Api;

/// <summary>
/// <c>POST /volumes/{name}/verify</c> starts a scrub (202 with its report; 409 while one runs or when another
/// controller owns the volume); <c>GET /volumes/{name}/verify</c> answers the newest one's report.
/// </summary>
internal static class VerifyEndpoints
{
    public static void MapVerifyEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/volumes/{name}/verify", (string name, string? repair, string? rangeBlocks, string? maxBytesPerSecond, VolumeCatalog catalog, VerifyService verify) =>
        {
            if (catalog.Find(name) is not { } v) return ApiErrors.NotFound($"no volume named '{name}'");
            if (!v.Owned) return ApiErrors.Conflict($"volume {name} is owned by another controller");
            var doRepair = repair is null or "" or "true" or "1" or "yes";
            if (repair is not (null or "" or "true" or "1" or "yes" or "false" or "0" or "no"))
                return ApiErrors.BadRequest($"repair must be true or false, not '{repair}'");
            var range = VerifyService.DefaultRangeBlocks;
            if (rangeBlocks is { Length: > 0 } && (!int.TryParse(rangeBlocks, NumberStyles.None, CultureInfo.InvariantCulture, out range)
                    || range < 1 || range > Contracts.Api.BlockChecksums.MaxBlocks))
            {
                return ApiErrors.BadRequest($"rangeBlocks must be a whole number from 1 to {Contracts.Api.BlockChecksums.MaxBlocks}, not '{rangeBlocks}'");
            }
            long rate = 0;
            if (maxBytesPerSecond is { Length: > 0 } && !long.TryParse(maxBytesPerSecond, NumberStyles.None, CultureInfo.InvariantCulture, out rate))
                return ApiErrors.BadRequest($"maxBytesPerSecond must be a whole number of bytes (0: no limit), not '{maxBytesPerSecond}'");
            var started = verify.Start(v, doRepair, range, rate);
            return started is null
                ? ApiErrors.Conflict($"a verify of {name} is running: GET /volumes/{name}/verify")
                : Results.Accepted($"/volumes/{name}/verify", started);
        });
        app.MapGet("/volumes/{name}/verify", (string name, VolumeCatalog catalog, VerifyService verify) =>
        {
            if (catalog.Find(name) is null) return ApiErrors.NotFound($"no volume named '{name}'");
            return verify.Latest(name) is { } report
                ? Results.Ok(report)
                : ApiErrors.NotFound($"no verify of {name} since this controller started");
        }).Requires(AccessNeed.ReadVolume);
    }
}
