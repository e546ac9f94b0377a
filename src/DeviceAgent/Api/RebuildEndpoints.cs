using TaggedMirror.DeviceAgent.Consumption;

namespace TaggedMirror.DeviceAgent.Api;

/// <summary>
/// <c>POST /rebuild?id=…</c>, for the controller's <c>tm rebuild</c>: the apply loop begins the rebuild between two
/// batches and this answers 202 with its progress (the same id again: its progress; another while one replays: 409).
/// Its progress is also in <c>GET /status</c>.
/// </summary>
internal static class RebuildEndpoints
{
    private static readonly TimeSpan TakeTimeout = TimeSpan.FromSeconds(8); // under the controller's 10-second client timeout

    public static void MapRebuildEndpoints(this IEndpointRouteBuilder app, string deviceId)
    {
        app.MapPost("/rebuild", async (string? id, RebuildRequests requests, CancellationToken ct) =>
        {
            if (string.IsNullOrEmpty(id) || id.Length > 64 || !id.All(char.IsAsciiLetterOrDigit))
                return Results.Problem("id must be 1 to 64 letters or digits", statusCode: 400);
            RebuildAnswer answer;
            try
            {
                answer = await requests.RequestAsync(id).WaitAsync(TakeTimeout, ct);
            }
            catch (TimeoutException)
            {
                return Results.Problem(
                    $"device {deviceId}'s apply loop did not take the rebuild within {TakeTimeout.TotalSeconds:0} s (is the broker or PostgreSQL away?); ask again",
                    statusCode: 503);
            }
            return answer.Progress is { } progress
                ? Results.Json(progress, statusCode: 202)
                : Results.Problem(answer.Refusal, statusCode: 409);
        });
    }
}
