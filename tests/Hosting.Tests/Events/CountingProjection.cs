using System.Collections.Concurrent;
using JasperFx.Events;
using Marten;
using Marten.Events.Projections;

namespace TaggedMirror.Hosting.Tests.Events;

/// <summary>
/// Counts events per stream and records every sequence with how many times it was applied, in the projection's own
/// transaction (as the product's projections do, through queued SQL).
/// </summary>
internal sealed class CountingProjection(string schema) : IProjection
{
    /// <summary>Sequences handed to <see cref="ApplyAsync"/>, in order (in memory, this instance only).</summary>
    public ConcurrentQueue<long> Applied { get; } = new();

    /// <summary>Set when a page came out of sequence order.</summary>
    public volatile bool OutOfOrder;

    public Task ApplyAsync(IDocumentOperations operations, IReadOnlyList<IEvent> events, CancellationToken cancellation)
    {
        for (var i = 1; i < events.Count; i++)
        {
            if (events[i].Sequence <= events[i - 1].Sequence) OutOfOrder = true;
        }

        operations.QueueSqlCommand('^', $"""
            INSERT INTO {schema}.seen (seq, stream_id, times) SELECT s, id, 1 FROM unnest(^::bigint[], ^::text[]) AS u(s, id)
            ON CONFLICT (seq) DO UPDATE SET times = seen.times + 1
            """, events.Select(e => e.Sequence).ToArray(), events.Select(e => e.StreamKey!).ToArray());
        operations.QueueSqlCommand('^', $"""
            INSERT INTO {schema}.counts (stream_id, n) SELECT id, count(*) FROM unnest(^::text[]) AS u(id) GROUP BY id
            ON CONFLICT (stream_id) DO UPDATE SET n = counts.n + EXCLUDED.n
            """, (object)events.Select(e => e.StreamKey!).ToArray());
        foreach (var e in events) Applied.Enqueue(e.Sequence);
        return Task.CompletedTask;
    }
}
