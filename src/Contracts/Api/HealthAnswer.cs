namespace TaggedMirror.Contracts.Api;

/// <summary>
/// What <c>GET /health/live</c> and <c>GET /health/ready</c> answer (JSON, camelCase) on the controller and on
/// every device agent. The HTTP status says the same: readiness is 200 only when <see cref="Status"/> is
/// <c>Healthy</c> (503 when <c>Degraded</c>, as the bus is while it reconnects, or <c>Unhealthy</c>).
/// </summary>
/// <param name="Status">The worst status of the checks: <c>Healthy</c>, <c>Degraded</c> or <c>Unhealthy</c>.</param>
/// <param name="DurationMs">How long the checks took together.</param>
/// <param name="Checks">One entry per check, in registration order.</param>
public sealed record HealthAnswer(string Status, double DurationMs, HealthCheckAnswer[] Checks);

/// <summary>One check in <see cref="HealthAnswer"/>.</summary>
/// <param name="Name">The dependency: <c>process</c>, <c>postgresql</c>, <c>bus</c> or <c>kafka</c>.</param>
/// <param name="Status"><c>Healthy</c>, <c>Degraded</c> or <c>Unhealthy</c>.</param>
/// <param name="Description">Why, when the check says (never a connection string or a password).</param>
/// <param name="DurationMs">How long the check took.</param>
public sealed record HealthCheckAnswer(string Name, string Status, string? Description, double DurationMs);
