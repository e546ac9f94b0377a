using System.Collections.Concurrent;
using Npgsql;
using TaggedMirror.EventStore;

namespace TaggedMirror.EventStore.Tests;

/// <summary>Counts events per stream and records every sequence with how many times it was applied.</summary>
internal sealed class CountingProjection(string name = "counting") : IResettableProjection
{
    private string _schema = "";

    public string Name { get; } = name;

    /// <summary>Sequences handed to <see cref="ApplyAsync"/>, in order (in memory, this instance only).</summary>
    public ConcurrentQueue<long> Applied { get; } = new();

    public async Task MigrateAsync(NpgsqlConnection c, string schema, CancellationToken ct)
    {
        _schema = schema;
        await using var cmd = new NpgsqlCommand(
            $"""
            CREATE TABLE IF NOT EXISTS {schema}.counts (stream_id text PRIMARY KEY, n bigint NOT NULL);
            CREATE TABLE IF NOT EXISTS {schema}.seen (seq bigint PRIMARY KEY, stream_id text NOT NULL, times int NOT NULL);
            """,
            c);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    public async ValueTask ApplyAsync(NpgsqlConnection c, NpgsqlTransaction t, IReadOnlyList<StoredEvent> events, CancellationToken ct)
    {
        // Sequence order is part of the contract.
        for (var i = 1; i < events.Count; i++)
        {
            if (events[i].Sequence <= events[i - 1].Sequence)
            {
                throw new InvalidOperationException("Events out of order.");
            }
        }

        await using var cmd = new NpgsqlCommand(
            $"""
            INSERT INTO {_schema}.seen (seq, stream_id, times) SELECT s, id, 1 FROM unnest(@seqs, @streams) AS u(s, id)
            ON CONFLICT (seq) DO UPDATE SET times = seen.times + 1;
            INSERT INTO {_schema}.counts (stream_id, n) SELECT id, count(*) FROM unnest(@streams) AS u(id) GROUP BY id
            ON CONFLICT (stream_id) DO UPDATE SET n = counts.n + EXCLUDED.n;
            """,
            c,
            t);
        cmd.Parameters.AddWithValue("seqs", events.Select(e => e.Sequence).ToArray());
        cmd.Parameters.AddWithValue("streams", events.Select(e => e.StreamId).ToArray());
        await cmd.ExecuteNonQueryAsync(ct);
        foreach (var e in events)
        {
            Applied.Enqueue(e.Sequence);
        }
    }

    public async ValueTask ResetAsync(NpgsqlConnection c, NpgsqlTransaction t, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"TRUNCATE {_schema}.counts, {_schema}.seen", c, t);
        await cmd.ExecuteNonQueryAsync(ct);
        Applied.Clear();
    }
}

/// <summary>Inline: counts events per stream; throws on an event of type "Boom".</summary>
internal sealed class InlineCountProjection : IInlineProjection
{
    private string _schema = "";

    public ConcurrentQueue<int> BatchSizes { get; } = new();

    public async Task MigrateAsync(NpgsqlConnection connection, string schema, CancellationToken ct)
    {
        _schema = schema;
        await using var cmd = new NpgsqlCommand($"CREATE TABLE IF NOT EXISTS {schema}.inline_counts (stream_id text PRIMARY KEY, n bigint NOT NULL)", connection);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    public async ValueTask ApplyAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<StoredEvent> events, CancellationToken ct)
    {
        BatchSizes.Enqueue(events.Count);
        await using var cmd = new NpgsqlCommand(
            $"""
            INSERT INTO {_schema}.inline_counts (stream_id, n) SELECT id, count(*) FROM unnest(@streams) AS u(id) GROUP BY id
            ON CONFLICT (stream_id) DO UPDATE SET n = inline_counts.n + EXCLUDED.n
            """,
            connection,
            transaction);
        cmd.Parameters.AddWithValue("streams", events.Select(e => e.StreamId).ToArray());
        await cmd.ExecuteNonQueryAsync(ct);

        // Thrown after the projection's own write, so the rollback has something to undo.
        if (events.Any(e => e.Type == "Boom"))
        {
            throw new InvalidOperationException("Projection refused a Boom event.");
        }
    }
}
