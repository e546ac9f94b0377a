using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Hosting.Access;
using TaggedMirror.Hosting.Health;

namespace TaggedMirror.Controller.Access;

/// <summary>What an endpoint asks of the caller's key. An endpoint that names nothing asks for an operator's.</summary>
internal enum AccessNeed
{
    /// <summary>Any live key (what it then shows is filtered by the key: <c>GET /volumes</c>).</summary>
    AnyKey,

    /// <summary>A key that may read the volume in the route's <c>name</c>.</summary>
    ReadVolume,

    /// <summary>A key that may write the volume in the route's <c>name</c>.</summary>
    WriteVolume,

    /// <summary>An operator's key.</summary>
    Operator,
}

/// <summary>Endpoint metadata: what <see cref="AccessControl"/> asks of a request's key.</summary>
internal sealed record AccessRequirement(AccessNeed Need);

internal static class AccessEndpoints
{
    /// <summary>Marks the endpoint as asking <paramref name="need"/> of the caller (default: an operator's key).</summary>
    public static TBuilder Requires<TBuilder>(this TBuilder builder, AccessNeed need) where TBuilder : IEndpointConventionBuilder
    {
        builder.WithMetadata(new AccessRequirement(need));
        return builder;
    }

    /// <summary>The principal <see cref="AccessControl"/> found for this request.</summary>
    public static Principal Principal(this HttpContext context) =>
        context.Items[typeof(Principal)] as Principal ?? throw new InvalidOperationException("no principal: the request did not pass access control");
}

/// <summary>
/// Every request but the health checks must carry a live API key (<c>Authorization: Bearer</c> or
/// <see cref="AccessHeaders.ApiKey"/>), and the key must allow what the endpoint asks (<see cref="AccessRequirement"/>).
/// Refusals are 401 (no key, a wrong or revoked one) or 403 (a key that may not do this), each with a sentence, and
/// happen before the endpoint runs: nothing changes. A source address refused more than
/// <see cref="ControllerOptions.AccessFailureLimit"/> times in 10 seconds is answered 429 for the rest of them,
/// without looking its keys up. Keys are never logged; their ids are.
/// </summary>
internal sealed class AccessControl(RequestDelegate next, ApiKeyStore keys, ControllerOptions options, ControllerTelemetry telemetry, ILogger<AccessControl> logger)
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<IPAddress, (int Failures, long WindowStart)> _failures = new();

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.Request.Path.StartsWithSegments("/health"))
        {
            await next(context);
            return;
        }
        var source = context.Connection.RemoteIpAddress ?? IPAddress.None;
        if (IsLimited(source))
        {
            Count("rate_limited");
            context.Response.Headers.RetryAfter = ((int)Window.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
            await RefuseAsync(context, StatusCodes.Status429TooManyRequests, "Too many requests",
                $"too many refused requests from {source} in the last {Window.TotalSeconds:0} s; try again later");
            return;
        }
        var presented = PresentedKey(context.Request);
        if (presented is null)
        {
            Failed(source, "no_key");
            await RefuseAsync(context, StatusCodes.Status401Unauthorized, "Unauthorized",
                $"an API key is required: send it as 'Authorization: Bearer <key>' or '{AccessHeaders.ApiKey}: <key>' (the CLI reads ${AccessHeaders.KeyEnvironment} or the file {AccessHeaders.DefaultKeyFile})");
            return;
        }
        Principal? principal;
        try
        {
            principal = await keys.AuthenticateAsync(presented, context.RequestAborted);
        }
        catch (KeyLookupUnavailableException ex)
        {
            await RefuseAsync(context, StatusCodes.Status503ServiceUnavailable, "Unavailable", ex.Message);
            return;
        }
        if (principal is null)
        {
            Failed(source, "invalid_key");
            await RefuseAsync(context, StatusCodes.Status401Unauthorized, "Unauthorized", "the API key is not valid: unknown, mistyped or revoked");
            return;
        }
        context.Items[typeof(Principal)] = principal;
        Activity.Current?.SetTag("tm.key_id", principal.KeyId);
        var need = context.GetEndpoint()?.Metadata.GetMetadata<AccessRequirement>()?.Need ?? AccessNeed.Operator;
        if (Forbidden(principal, need, context) is { } why)
        {
            Count("forbidden");
            logger.LogInformation("Refused {Method} {Path} to key {KeyId}: {Reason}", context.Request.Method, context.Request.Path, principal.KeyId, why);
            await RefuseAsync(context, StatusCodes.Status403Forbidden, "Forbidden", why);
            return;
        }
        await next(context);
    }

    /// <summary>Why <paramref name="principal"/> may not do what the endpoint asks; null when it may.</summary>
    internal static string? Forbidden(Principal principal, AccessNeed need, HttpContext context)
    {
        if (principal.IsOperator) return null;
        var volume = context.Request.RouteValues.TryGetValue("name", out var n) ? n as string : null;
        return need switch
        {
            AccessNeed.AnyKey => null,
            AccessNeed.ReadVolume when volume is not null && principal.MayRead(volume) => null,
            AccessNeed.WriteVolume when volume is not null && principal.MayWrite(volume) => null,
            AccessNeed.WriteVolume when volume is not null && principal.MayRead(volume) =>
                $"key {principal.KeyId} is read-only: it may read volume {volume} but not write it",
            AccessNeed.ReadVolume or AccessNeed.WriteVolume =>
                $"key {principal.KeyId} may not use volume {volume ?? "(none named)"}: a producer key uses only the volumes it names",
            _ => $"key {principal.KeyId} is a {principal.Role} key: this needs an operator key",
        };
    }

    private static string? PresentedKey(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return authorization["Bearer ".Length..].Trim();
        var header = request.Headers[AccessHeaders.ApiKey].ToString();
        return header.Length > 0 ? header.Trim() : null;
    }

    private bool IsLimited(IPAddress source) =>
        _failures.TryGetValue(source, out var f) && Stopwatch.GetElapsedTime(f.WindowStart) < Window && f.Failures >= options.AccessFailureLimit;

    private void Failed(IPAddress source, string reason)
    {
        Count(reason);
        var now = Stopwatch.GetTimestamp();
        _failures.AddOrUpdate(source, _ => (1, now), (_, f) => Stopwatch.GetElapsedTime(f.WindowStart) < Window ? (f.Failures + 1, f.WindowStart) : (1, now));
        if (_failures.Count > 10_000)
        {
            foreach (var (address, f) in _failures)
            {
                if (Stopwatch.GetElapsedTime(f.WindowStart) >= Window) _failures.TryRemove(address, out _);
            }
        }
    }

    private void Count(string reason) => telemetry.AccessRefused.Add(1, new KeyValuePair<string, object?>("reason", reason));

    private static Task RefuseAsync(HttpContext context, int status, string title, string detail) =>
        Results.Problem(detail, statusCode: status, title: title).ExecuteAsync(context);
}
