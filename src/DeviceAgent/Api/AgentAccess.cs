using TaggedMirror.Contracts.Api;
using TaggedMirror.Hosting.Access;

namespace TaggedMirror.DeviceAgent.Api;

/// <summary>
/// An agent serves its reads, status and control calls to the controller (the cluster's <see cref="ServiceSecret"/>
/// in <see cref="ServiceSecret.Header"/>) and to operators (an operator API key, as the controller takes it), never
/// to producers: a producer key is refused (403) even for the objects of its own volumes, which it reads through
/// the controller. No key or a wrong one: 401. The health checks ask for nothing. A refusal changes nothing.
/// </summary>
internal sealed class AgentAccess(RequestDelegate next, ServiceSecret secret, ApiKeyLookup keys)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (context.Request.Path.StartsWithSegments("/health"))
        {
            await next(context);
            return;
        }
        var presentedSecret = context.Request.Headers[ServiceSecret.Header].ToString();
        if (presentedSecret.Length > 0 && await secret.MatchesAsync(presentedSecret, context.RequestAborted))
        {
            await next(context);
            return;
        }
        var authorization = context.Request.Headers.Authorization.ToString();
        var key = authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            ? authorization["Bearer ".Length..].Trim()
            : context.Request.Headers[AccessHeaders.ApiKey].ToString().Trim();
        Principal? principal;
        try
        {
            principal = key.Length > 0 ? await keys.AuthenticateAsync(key, context.RequestAborted) : null;
        }
        catch (KeyLookupUnavailableException ex)
        {
            await Results.Problem(ex.Message, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Unavailable").ExecuteAsync(context);
            return;
        }
        if (principal is { IsOperator: true })
        {
            await next(context);
            return;
        }
        var (status, title, detail) = principal is not null
            ? (StatusCodes.Status403Forbidden, "Forbidden", $"key {principal.KeyId} is a {principal.Role} key: a device agent serves the controller and operators only")
            : (StatusCodes.Status401Unauthorized, "Unauthorized",
                presentedSecret.Length > 0 || key.Length > 0
                    ? "the service secret or API key is not valid"
                    : $"a device agent serves the controller (its service secret) and operators (an operator key: 'Authorization: Bearer <key>') only");
        await Results.Problem(detail, statusCode: status, title: title).ExecuteAsync(context);
    }
}
