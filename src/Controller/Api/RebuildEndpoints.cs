using TaggedMirror.Controller.Rebuild;

namespace TaggedMirror.Controller.Api;

/// <summary>
/// <c>POST /devices/{id}/rebuild</c> begins a rebuild of the device from its log (202 with its report; 404 for a device
/// that never registered; 409 while one runs, when a volume on it has no other in-sync mirror, or when another
/// controller owns one); <c>GET /devices/{id}/rebuild</c> answers the newest one's report.
/// </summary>
internal static class RebuildEndpoints
{
    public static void MapRebuildEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/devices/{id}/rebuild", async (string id, RebuildService rebuilds, CancellationToken ct) =>
        {
            try
            {
                var report = await rebuilds.StartAsync(id, ct);
                return Results.Accepted($"/devices/{id}/rebuild", report);
            }
            catch (RebuildRefusedException ex)
            {
                return Results.Problem(ex.Message, statusCode: ex.Status);
            }
        });
        app.MapGet("/devices/{id}/rebuild", async (string id, RebuildService rebuilds, CancellationToken ct) =>
            await rebuilds.ReportAsync(id, ct) is { } report
                ? Results.Ok(report)
                : ApiErrors.NotFound($"device {id} was never rebuilt"));
    }
}
