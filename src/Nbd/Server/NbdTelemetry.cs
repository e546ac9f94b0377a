using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace TaggedMirror.Nbd.Server;

/// <summary>The server's spans (one per request, parent of whatever the export does) and meters; a host adds <see cref="Name"/> to its tracing and metrics.</summary>
public static class NbdTelemetry
{
    /// <summary>The <see cref="ActivitySource"/> and <see cref="Meter"/> name.</summary>
    public const string Name = "TaggedMirror.Nbd";

    internal static readonly ActivitySource Source = new(Name);

    private static readonly Meter Meter = new(Name);

    internal static readonly Counter<long> Requests = Meter.CreateCounter<long>("tm.nbd.requests", description: "NBD requests answered, by command and outcome (ok or the error's name)");

    internal static readonly Counter<long> Bytes = Meter.CreateCounter<long>("tm.nbd.bytes", "By", "Bytes read or written through NBD, by command");

    internal static readonly UpDownCounter<long> Connections = Meter.CreateUpDownCounter<long>("tm.nbd.connections", description: "NBD connections open (handshake or transmission)");

    internal static readonly Counter<long> Refused = Meter.CreateCounter<long>("tm.nbd.connections_closed_for_protocol", description: "Connections the server closed because the client broke the protocol");

    internal static readonly Counter<long> OverLimit = Meter.CreateCounter<long>("tm.nbd.connections_over_limit", description: "Connections closed as soon as accepted: the server already served its most at once (MaxConnections)");

    internal static readonly Counter<long> AcceptFailures = Meter.CreateCounter<long>("tm.nbd.accept_failures", description: "Failed accepts on the NBD listener (out of file descriptors, a peer reset before it was accepted); a failure that persists is tried again at most once a second");
}
