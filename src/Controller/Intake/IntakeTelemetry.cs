using System.Diagnostics.Metrics;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Intake;

/// <summary>The intake's counters (meter <c>TaggedMirror.Controller</c>), each with <c>tm.volume</c> where one is known.</summary>
internal sealed class IntakeTelemetry(TaggedMirrorTelemetry telemetry)
{
    public Counter<long> Accepted { get; } = telemetry.Meter.CreateCounter<long>("tm.intake.accepted", "{request}", "Intake requests written and answered ok");

    public Counter<long> Refused { get; } = telemetry.Meter.CreateCounter<long>("tm.intake.refused", "{request}", "Intake requests answered with a refusal");

    public Counter<long> Duplicates { get; } = telemetry.Meter.CreateCounter<long>("tm.intake.duplicates", "{request}",
        "Intake requests whose id was seen before, answered with their first outcome (nothing written)");

    public Counter<long> Quarantined { get; } = telemetry.Meter.CreateCounter<long>("tm.intake.quarantined", "{request}",
        "Intake messages refused as malformed, out of range or for no volume, and kept in intake_quarantine");

    public Counter<long> Expired { get; } = telemetry.Meter.CreateCounter<long>("tm.intake.expired", "{request}",
        "Answered request ids forgotten after Controller:IntakeRequestRetention (a later request with the id is a new request)");

    public Counter<long> Waits { get; } = telemetry.Meter.CreateCounter<long>("tm.intake.waits", "{wait}",
        "Times a volume's intake stopped to wait and try again (a mirror not shown caught up, PostgreSQL or Kafka away)");
}
