using System.Collections.Concurrent;

namespace TaggedMirror.Controller.Tokens;

/// <summary>
/// M5 on the controller: the tokens waiting to go back to one device. The life of a token, end to end:
/// <list type="number">
/// <item>A device applies a write, records its entry, and returns the entry's token, the entry's version in
/// the device's stream (<c>DeviceAgent/Consumption/TransactionApplier</c>; <c>DeviceApplied</c> on the bus).</item>
/// <item><c>Fanout/WritePipeline.OnApplied</c> keeps it with the write (<c>Fanout/InflightWrite</c>) until every mirror
/// the write was meant for applied it; a write that missed a mirror never gives its tokens back (reconciliation
/// repairs that mirror, then asks for them: <c>Reconciliation/ReconciliationConsumer</c>).</item>
/// <item>Then each device's token goes into that device's queue, here.</item>
/// <item>It leaves on the next transaction to that device (<c>WritePipeline</c>) or, when the device is idle, on a
/// barrier (<c>Fanout/BarrierPublisher</c>); a send that fails puts it back (retiring twice is harmless).</item>
/// <item>The device retires the entry (<c>TagRetired</c>) and its live tag table drops it.</item>
/// </list>
/// Thread-safe.
/// </summary>
internal sealed class TokenQueue
{
    private readonly ConcurrentQueue<long> _tokens = new();

    /// <summary>Tokens waiting.</summary>
    public int Count => _tokens.Count;

    public void Enqueue(long token) => _tokens.Enqueue(token);

    /// <summary>Puts back tokens a failed send took.</summary>
    public void Return(ReadOnlySpan<long> tokens)
    {
        foreach (var t in tokens) _tokens.Enqueue(t);
    }

    /// <summary>Moves up to <paramref name="destination"/>.Length waiting tokens into it.</summary>
    public int Take(Span<long> destination)
    {
        var n = 0;
        while (n < destination.Length && _tokens.TryDequeue(out var t))
            destination[n++] = t;
        return n;
    }
}
