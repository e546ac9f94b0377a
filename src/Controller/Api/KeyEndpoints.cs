using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Controller.Access;
using TaggedMirror.Hosting.Http;

namespace TaggedMirror.Controller.Api;

/// <summary>
/// API keys (operators only): <c>POST /keys</c> creates one and answers its text this once, <c>GET /keys</c> lists them
/// (never a secret), <c>DELETE /keys/{id}</c> revokes one. A key cannot revoke itself: an operator locked out by a
/// typo would need the database to get back in.
/// </summary>
internal static class KeyEndpoints
{
    /// <summary>The most volumes one producer key may name.</summary>
    public const int MaxVolumesPerKey = 1000;

    public static void MapKeyEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/keys", CreateAsync);
        app.MapGet("/keys", async (ApiKeyStore keys, CancellationToken ct) => Results.Ok(await keys.ListAsync(ct)));
        app.MapDelete("/keys/{id}", async (string id, HttpContext context, ApiKeyStore keys, CancellationToken ct) =>
        {
            if (id == context.Principal().KeyId)
                return ApiErrors.Conflict($"key {id} is the one this request presented: revoke it with another operator key");
            return await keys.RevokeAsync(id, ct) is { } revoked ? Results.Ok(revoked) : ApiErrors.NotFound($"no API key with id '{id}'");
        });
    }

    private static async Task<IResult> CreateAsync(HttpRequest request, ApiKeyStore keys, CancellationToken ct)
    {
        var (body, refusal) = await JsonBodies.ReadAsync<CreateKeyRequest>(request, "{role, volumes?, readOnly?, description?}",
            "role is a string (operator or producer), volumes an array of volume names, readOnly a boolean, description a string", ct);
        if (body is null) return refusal!;
        if (!AccessRoles.IsValid(body.Role))
            return ApiErrors.BadRequest($"role '{body.Role}' is not one of {AccessRoles.Operator} or {AccessRoles.Producer}");
        var volumes = (body.Volumes ?? []).Distinct(StringComparer.Ordinal).ToArray();
        if (body.Role == AccessRoles.Operator && (volumes.Length > 0 || body.ReadOnly))
            return ApiErrors.BadRequest("an operator key uses every volume and may write: give volumes and readOnly to producer keys only");
        if (body.Role == AccessRoles.Producer && volumes.Length == 0)
            return ApiErrors.BadRequest("a producer key must name the volumes it may use (volumes: [\"v1\", ...])");
        if (volumes.Length > MaxVolumesPerKey)
            return ApiErrors.BadRequest($"a key may name at most {MaxVolumesPerKey} volumes, not {volumes.Length}");
        if (volumes.FirstOrDefault(v => !Names.IsValid(v)) is { } bad)
            return ApiErrors.BadRequest($"volume name '{bad}' is not valid: use 1 to 48 lower-case letters, digits or dashes");
        if (body.Description is { Length: > 200 })
            return ApiErrors.BadRequest($"a description is at most 200 characters, not {body.Description.Length}");
        var created = await keys.CreateAsync(body.Role!, volumes, body.ReadOnly, body.Description, ct);
        return Results.Created($"/keys/{created.Info.Id}", created);
    }
}
