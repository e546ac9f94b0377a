using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace TaggedMirror.EventStore;

/// <summary>
/// Feeds one <see cref="IAsyncProjection"/> every committed event exactly once, in global sequence order, storing the
/// checkpoint in the same transaction as the projection's writes.
/// </summary>
/// <remarks>
/// <para>
/// Why not simply "seq &gt; checkpoint": sequence numbers are drawn at insert time but transactions commit in another
/// order, so seq 10 can become visible after seq 11. Reading past 11 and checkpointing it would lose 10 for good.
/// </para>
/// <para>
/// The common fix "read only events with <c>tx_id &lt; pg_snapshot_xmin(pg_current_snapshot())</c>, ordered by seq" is
/// not enough either: a transaction's id is assigned at its FIRST write, not when it draws a seq. A session that wrote
/// something early (xid 99) and appends late (seq 11) passes the filter while a younger transaction (xid 100, seq 10)
/// is still open; the daemon would checkpoint 11 and skip 10. (Ordering by (tx_id, seq) instead is safe but breaks
/// per-stream version order.)
/// </para>
/// <para>
/// What this daemon does: a seq is <i>settled</i> once no transaction that could still commit holds it. Each round it
/// reads L = the sequence's last value and THEN obtains X = a fresh transaction id. Every transaction holding a
/// seq &lt;= L drew it before L was read, and (invariant of <see cref="EventSession.AppendAsync"/>: the stream row is
/// written before any seq is drawn) already had its xid, so its xid &lt; X. When a later snapshot has
/// <c>xmin &gt;= X</c>, none of those transactions is running any more: every seq &lt;= L is settled (committed and
/// visible, or rolled back for ever). The candidate (L, X) then becomes the high-water mark, and events in
/// (checkpoint, high-water] are read in seq order. This requires the identity sequence to keep CACHE 1 and events to
/// be inserted only through <see cref="EventSession"/>. A transaction left open anywhere in the cluster (xmin is
/// cluster-wide) delays the daemon but never makes it skip.
/// </para>
/// <para>
/// Rounds take a per-projection advisory lock, so several daemons for the same projection (other processes) are
/// safe; the checkpoint row is written with the projection's writes. Burning a transaction id for X happens only in
/// rounds that see new sequence values, so an idle daemon writes nothing.
/// </para>
/// </remarks>
public sealed class ProjectionDaemon
{
    private const int MaxCandidates = 32;
    private static readonly TimeSpan CatchUpPollInterval = TimeSpan.FromMilliseconds(5);
    private static readonly TimeSpan FollowUpDelay = TimeSpan.FromMilliseconds(10);

    private readonly PgEventStore _store;
    private readonly IAsyncProjection _projection;
    private readonly ProjectionDaemonOptions _options;
    private readonly ILogger _logger;
    private readonly string _lockKey;
    private readonly SemaphoreSlim _gate = new(1, 1);

    // (L, X) pairs waiting for xmin to pass X; ascending in both. Guarded by _gate.
    private readonly List<Candidate> _candidates = [];
    private long _safeSequence;
    private long _lastCandidateSequence = -1;
    private bool _migrated;

    /// <summary>Creates the daemon and registers the projection with <paramref name="store"/> for migration.</summary>
    public ProjectionDaemon(PgEventStore store, IAsyncProjection projection, ProjectionDaemonOptions options, ILogger<ProjectionDaemon>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(projection);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(projection.Name, nameof(projection));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.PollInterval, TimeSpan.Zero, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.MinRetryDelay, TimeSpan.Zero, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxRetryDelay, options.MinRetryDelay, nameof(options));

        _store = store;
        _projection = projection;
        _options = options;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _lockKey = LockKey(store, projection);
        store.AddAsyncProjection(projection);
    }

    /// <summary>
    /// The key of the advisory lock every round of <paramref name="projection"/> holds (<c>pg_advisory_xact_lock(hashtextextended(key, 0))</c>):
    /// work on the projection's tables outside a round takes it too, so it never interleaves with one.
    /// </summary>
    public static string LockKey(PgEventStore store, IAsyncProjection projection) =>
        $"TaggedMirror.ProjectionDaemon:{store.Schema}:{projection.Name}";

    /// <summary>
    /// Runs until <paramref name="ct"/> is cancelled, then returns normally. Errors (PostgreSQL restarted, connection
    /// lost, a failing projection) are logged and retried with exponential backoff; they never end the loop.
    /// </summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var retryDelay = _options.MinRetryDelay;
        var followedUp = false;
        while (!ct.IsCancellationRequested)
        {
            TimeSpan wait;
            try
            {
                RoundResult round;
                await _gate.WaitAsync(ct).ConfigureAwait(false);
                try
                {
                    round = await RunRoundAsync(ct).ConfigureAwait(false);
                }
                finally
                {
                    _gate.Release();
                }

                retryDelay = _options.MinRetryDelay;
                if (round.Truncated)
                {
                    wait = TimeSpan.Zero;
                    followedUp = false;
                }
                else if (round.NewCandidate && !followedUp)
                {
                    // The new candidate is usually satisfiable at once; look again soon rather than a poll later.
                    // Only once in a row, so a long-open transaction does not turn this into a spin.
                    wait = FollowUpDelay < _options.PollInterval ? FollowUpDelay : _options.PollInterval;
                    followedUp = true;
                }
                else
                {
                    wait = _options.PollInterval;
                    followedUp = false;
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
#pragma warning disable CA1031 // The daemon must survive anything; the error is logged and retried.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                wait = retryDelay;
                retryDelay = retryDelay * 2 < _options.MaxRetryDelay ? retryDelay * 2 : _options.MaxRetryDelay;
                if (TransientErrors.IsTransient(ex))
                {
                    _logger.LogWarning(ex, "Projection {Projection}: transient error, retrying in {Delay}.", _projection.Name, wait);

                    // Pooled connections to a restarted server are all dead; do not find them one retry at a time.
                    _store.DataSource.Clear();
                }
                else
                {
                    _logger.LogError(ex, "Projection {Projection} failed, retrying in {Delay}.", _projection.Name, wait);
                }
            }

            try
            {
                await Task.Delay(wait, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>
    /// Processes every event committed before this call (waiting for transactions already in flight to finish, since
    /// they could still commit a lower sequence) and returns the checkpoint, the highest sequence processed or skipped
    /// as settled. Errors propagate.
    /// </summary>
    public async Task<long> CatchUpAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await EnsureMigratedAsync(ct).ConfigureAwait(false);
            var target = await CaptureCandidateAsync(ct).ConfigureAwait(false);
            while (true)
            {
                var round = await RunRoundAsync(ct).ConfigureAwait(false);
                if (round.Checkpoint >= target)
                {
                    return round.Checkpoint;
                }

                if (round.Processed == 0)
                {
                    await Task.Delay(CatchUpPollInterval, ct).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Resets the checkpoint to 0 (and, for an <see cref="IResettableProjection"/>, the projection's state, in the same
    /// transaction), then replays from the first event as <see cref="CatchUpAsync"/> does.
    /// </summary>
    public async Task RebuildAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await EnsureMigratedAsync(ct).ConfigureAwait(false);
            await using var connection = await _store.DataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
            await using (var cmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", connection, tx))
            {
                cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _lockKey });
                await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            if (_projection is IResettableProjection resettable)
            {
                await resettable.ResetAsync(connection, tx, ct).ConfigureAwait(false);
            }

            await using (var cmd = new NpgsqlCommand(_store.Sql.WriteCheckpoint, connection, tx))
            {
                cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _projection.Name });
                cmd.Parameters.Add(new NpgsqlParameter<long> { TypedValue = 0 });
                await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            await tx.CommitAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }

        await CatchUpAsync(ct).ConfigureAwait(false);
    }

    private async Task EnsureMigratedAsync(CancellationToken ct)
    {
        if (!_migrated)
        {
            await _store.MigrateCoreAsync([_projection], ct).ConfigureAwait(false);
            _migrated = true;
        }
    }

    /// <summary>Records a candidate covering everything drawn so far; returns its sequence.</summary>
    private async Task<long> CaptureCandidateAsync(CancellationToken ct)
    {
        await using var connection = await _store.DataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection);

        // Statements of a batch run in order, so the xid is assigned after the sequence was read.
        batch.BatchCommands.Add(new NpgsqlBatchCommand(_store.Sql.SequenceLastValue));
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT pg_current_xact_id()::text::bigint"));
        await using var reader = await batch.ExecuteReaderAsync(ct).ConfigureAwait(false);
        await reader.ReadAsync(ct).ConfigureAwait(false);
        var lastValue = reader.GetInt64(0);
        await reader.NextResultAsync(ct).ConfigureAwait(false);
        await reader.ReadAsync(ct).ConfigureAwait(false);
        var txId = reader.GetInt64(0);
        AddCandidate(lastValue, txId);
        return lastValue;
    }

    private async Task<RoundResult> RunRoundAsync(CancellationToken ct)
    {
        await EnsureMigratedAsync(ct).ConfigureAwait(false);
        await using var connection = await _store.DataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);

        long checkpoint, xmin, lastValue;
        await using (var batch = new NpgsqlBatch(connection, tx))
        {
            var lockCommand = new NpgsqlBatchCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");
            lockCommand.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _lockKey });
            batch.BatchCommands.Add(lockCommand);
            var checkpointCommand = new NpgsqlBatchCommand(_store.Sql.ReadCheckpoint);
            checkpointCommand.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _projection.Name });
            batch.BatchCommands.Add(checkpointCommand);
            batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"));
            batch.BatchCommands.Add(new NpgsqlBatchCommand(_store.Sql.SequenceLastValue));

            await using var reader = await batch.ExecuteReaderAsync(ct).ConfigureAwait(false);
            await reader.NextResultAsync(ct).ConfigureAwait(false);
            checkpoint = await reader.ReadAsync(ct).ConfigureAwait(false) ? reader.GetInt64(0) : 0;
            await reader.NextResultAsync(ct).ConfigureAwait(false);
            await reader.ReadAsync(ct).ConfigureAwait(false);
            xmin = reader.GetInt64(0);
            await reader.NextResultAsync(ct).ConfigureAwait(false);
            await reader.ReadAsync(ct).ConfigureAwait(false);
            lastValue = reader.GetInt64(0);
        }

        // Every candidate whose X is below xmin is settled (see the class remarks).
        var settled = 0;
        while (settled < _candidates.Count && _candidates[settled].TxId <= xmin)
        {
            _safeSequence = Math.Max(_safeSequence, _candidates[settled].Sequence);
            settled++;
        }

        _candidates.RemoveRange(0, settled);

        List<StoredEvent>? events = null;
        if (_safeSequence > checkpoint)
        {
            events = new List<StoredEvent>(Math.Min(_options.BatchSize, 1024));
            await using var cmd = _store.CreateReadRangeCommand(connection, tx, checkpoint, _safeSequence, _options.BatchSize);
            await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                events.Add(PgEventStore.ReadEvent(reader));
            }
        }

        var processed = events?.Count ?? 0;
        var truncated = processed == _options.BatchSize;
        var newCheckpoint = truncated ? events![^1].Sequence : Math.Max(checkpoint, _safeSequence);
        if (processed > 0)
        {
            await _projection.ApplyAsync(connection, tx, events!, ct).ConfigureAwait(false);
        }

        var needCandidate = lastValue > _lastCandidateSequence && lastValue > _safeSequence;
        long txId = 0;
        if (newCheckpoint != checkpoint || needCandidate)
        {
            await using var batch = new NpgsqlBatch(connection, tx);
            if (needCandidate)
            {
                // Assigned now, after lastValue was read: a valid X for the candidate (lastValue, X). First in the
                // batch because the reader skips statements that return no rows.
                batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT pg_current_xact_id()::text::bigint"));
            }

            if (newCheckpoint != checkpoint)
            {
                var write = new NpgsqlBatchCommand(_store.Sql.WriteCheckpoint);
                write.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _projection.Name });
                write.Parameters.Add(new NpgsqlParameter<long> { TypedValue = newCheckpoint });
                batch.BatchCommands.Add(write);
            }

            await using var reader = await batch.ExecuteReaderAsync(ct).ConfigureAwait(false);
            if (needCandidate)
            {
                await reader.ReadAsync(ct).ConfigureAwait(false);
                txId = reader.GetInt64(0);
            }
        }

        await tx.CommitAsync(ct).ConfigureAwait(false);
        if (needCandidate)
        {
            AddCandidate(lastValue, txId);
        }

        return new RoundResult(processed, newCheckpoint, truncated, needCandidate);
    }

    private void AddCandidate(long sequence, long txId)
    {
        if (sequence <= _safeSequence || sequence <= _lastCandidateSequence)
        {
            return;
        }

        // A later candidate is stricter, never wrong: when the list is full, the newest replaces the last one.
        var candidate = new Candidate(sequence, txId);
        if (_candidates.Count >= MaxCandidates)
        {
            _candidates[^1] = candidate;
        }
        else
        {
            _candidates.Add(candidate);
        }

        _lastCandidateSequence = sequence;
    }

    private readonly record struct Candidate(long Sequence, long TxId);

    private readonly record struct RoundResult(int Processed, long Checkpoint, bool Truncated, bool NewCandidate);
}
