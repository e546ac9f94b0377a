using System.Collections.Concurrent;
using System.Text.Json;
using Npgsql;
using Polly;
using Polly.Retry;
using TaggedMirror.Contracts;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Controller.Volumes;

/// <summary>
/// The volumes this controller knows, kept as events in <c>volume-&lt;name&gt;</c> streams, and the lease
/// that says which controller owns each (fenced by epoch: a takeover bumps the owner's epoch).
/// </summary>
internal sealed class VolumeCatalog(EventStreams store, ControllerOptions options, ILogger<VolumeCatalog> logger)
{
    private readonly ConcurrentDictionary<string, Volume> _volumes = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _stateWrites = new(1, 1);
    private readonly SemaphoreSlim _changes = new(1, 1);

    // A state change waits out a PostgreSQL restart rather than leave memory and the store apart.
    private readonly ResiliencePipeline _stateRetry = new ResiliencePipelineBuilder()
        .AddTimeout(options.StateWriteTimeout) // outermost: bounds every attempt together
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(TransientErrors.IsTransient),
            MaxRetryAttempts = int.MaxValue,
            Delay = TimeSpan.FromMilliseconds(100),
            MaxDelay = TimeSpan.FromSeconds(1),
            BackoffType = DelayBackoffType.Exponential,
        })
        .Build();

    public int Epoch { get; set; }

    public IEnumerable<Volume> All => _volumes.Values.OrderBy(v => v.Name, StringComparer.Ordinal);

    public Volume? Find(string name) => _volumes.GetValueOrDefault(name);

    public async Task LoadAsync(CancellationToken ct)
    {
        await RefreshAsync(ct);
        logger.LogInformation("Loaded {Count} volumes", _volumes.Count);
    }

    /// <summary>Loads volumes created elsewhere since this controller started (another controller, a CLI).</summary>
    public async Task RefreshAsync(CancellationToken ct)
    {
        var names = new List<string>();
        await using (var cmd = store.DataSource.CreateCommand($"SELECT name FROM {store.Schema}.volume_catalog ORDER BY name"))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            while (await r.ReadAsync(ct)) names.Add(r.GetString(0));
        }
        // A volume deleted (by another controller) leaves the catalog table: forget it here too.
        foreach (var gone in _volumes.Keys.Except(names, StringComparer.Ordinal).ToList())
        {
            if (_volumes.TryRemove(gone, out var v)) v.Retired = true;
        }
        foreach (var name in names)
        {
            if (_volumes.ContainsKey(name)) continue;
            if (await ReadAsync(name, ct) is not { } v) continue;
            v.Owned = await TryLeaseAsync(v, ct);
            _volumes.TryAdd(name, v);
        }
    }

    /// <summary>
    /// The volume as its stream has it now. A controller that takes a volume over reads it again before its
    /// first write: the previous owner may have grown its extension or changed its mirrors' states.
    /// </summary>
    public async Task<Volume?> ReloadAsync(Volume stale, CancellationToken ct)
    {
        if (await ReadAsync(stale.Name, ct) is not { } fresh) return null;
        fresh.LeaseDeadline = stale.LeaseDeadline;
        fresh.OwnerEpoch = stale.OwnerEpoch;
        _volumes[stale.Name] = fresh;
        // Nothing new starts on the stale copy (a write that waited at one of its fences starts again on this one).
        stale.Retired = true;
        return fresh;
    }

    /// <summary>The volume as its stream has it (null: no such volume, or deleted).</summary>
    private async Task<Volume?> ReadAsync(string name, CancellationToken ct)
    {
        VolumeCreated? created = null;
        var mirrors = new List<MirrorRecord>();
        long blocks = 0, reservedEnd = 0, version = 0;
        var deleted = false;
        foreach (var e in await store.ReadStreamAsync(VolumeEventTypes.Stream(name), ct))
        {
            version = e.Version;
            switch (e.Data)
            {
                case VolumeCreated c:
                    created = c;
                    blocks = reservedEnd = c.Blocks;
                    mirrors = [.. c.Mirrors.Select(p => new MirrorRecord(p.DeviceId, p.ObjectId))];
                    break;
                case ExtensionReserved x:
                    reservedEnd = Math.Max(reservedEnd, x.FirstBlock + x.Blocks);
                    break;
                case MirrorStateChanged c:
                    mirrors.Find(m => m.DeviceId == c.DeviceId)?.Apply(c.State, c.Reason);
                    break;
                case MirrorAttached a:
                    mirrors.RemoveAll(m => m.DeviceId == a.DeviceId);
                    ClearReplaces(mirrors, a.DeviceId);
                    var attached = new MirrorRecord(a.DeviceId, a.ObjectId) { Replaces = a.Replaces };
                    attached.Apply(MirrorState.NeedsFullCopy, a.Reason);
                    mirrors.Add(attached);
                    break;
                case MirrorDetached d:
                    mirrors.RemoveAll(m => m.DeviceId == d.DeviceId);
                    ClearReplaces(mirrors, d.DeviceId); // a replace is over once its old mirror left (or came back)
                    break;
                case VolumeGrown g:
                    blocks = g.Blocks;
                    reservedEnd = Math.Max(reservedEnd, g.Blocks);
                    break;
                case VolumeDeleted:
                    deleted = true;
                    break;
            }
        }
        if (created is null || deleted) return null;
        var v = new Volume(name, created.BlockSize, blocks, created.MinMirrors, [.. mirrors.Select((r, i) => r.ToMirror(i))])
        {
            ExtensionBlocks = reservedEnd - blocks,
            StreamVersion = version,
        };
        return v;
    }

    private static void ClearReplaces(List<MirrorRecord> mirrors, string deviceId)
    {
        foreach (var m in mirrors.Where(m => m.Replaces == deviceId)) m.Replaces = null;
    }

    /// <summary>A mirror as the stream's events leave it, before the volume object is built.</summary>
    private sealed class MirrorRecord(string deviceId, string objectId)
    {
        public string DeviceId { get; } = deviceId;

        public string? Replaces { get; set; }

        private MirrorState _state = MirrorState.InSync;
        private string? _reason;
        private bool _fullCopyPending;

        public void Apply(MirrorState state, string reason)
        {
            if (state == MirrorState.NeedsFullCopy) _fullCopyPending = true;
            else if (state == MirrorState.InSync) _fullCopyPending = false;
            _state = state;
            _reason = reason;
        }

        public Mirror ToMirror(int index) =>
            new(index, DeviceId, objectId) { State = _state, Reason = _reason, FullCopyPending = _fullCopyPending, Replaces = Replaces };
    }

    /// <summary>True when the volume's stream ends with its deletion (its name is not taken again).</summary>
    public async Task<bool> WasDeletedAsync(string name, CancellationToken ct) =>
        (await store.ReadStreamAsync(VolumeEventTypes.Stream(name), ct)).Any(e => e.Data is VolumeDeleted);

    /// <summary>
    /// Changes the volume's shape (<paramref name="decide"/> returns the event: a mirror attached or detached, the
    /// volume grown or deleted) while nothing else happens to it in this controller, then replaces the in-memory
    /// volume by the one its stream now describes. In order: no copy step or verify range is under way (the resync
    /// lock), no extension is being reserved, new writes wait (a fence over the whole volume), every write already
    /// sent is in its mirrors' logs (<paramref name="drain"/>); then <paramref name="decide"/> checks the request
    /// against the volume as it is now and prepares it, the event is appended (as owner, at the version last seen),
    /// and the new object takes the place of the old, which is <see cref="Volume.Retired"/>: writes that waited at
    /// the fence start again on the new one. What the old object's mirrors knew in memory carries over to the same
    /// devices' mirrors (<see cref="Mirror.CarryOver"/>). Design: docs/design.md, "Changing a volume's mirrors".
    /// Returns the new object, or null when the volume was deleted.
    /// </summary>
    public async Task<Volume?> ChangeAsync(
        string name, Func<Volume, CancellationToken, Task> drain, Func<Volume, CancellationToken, Task<object>> decide, CancellationToken ct,
        Func<Task>? after = null, Func<Volume, CancellationToken, Task>? before = null)
    {
        await _changes.WaitAsync(ct);
        try
        {
            // Slow preparation (queries, a message to a log) is made before writes are held at the fence.
            if (before is not null && Find(name) is { } current) await before(current, ct);
            var fresh = await ChangeLockedAsync(name, drain, decide, ct);
            // Still one change at a time: a removal sent here cannot land after the writes of a later attach of the same device.
            if (after is not null) await after();
            return fresh;
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> while no change of any volume's shape is under way in this controller (see
    /// <see cref="ChangeAsync"/>): what it sees of the mirrors stays true until it returns.
    /// </summary>
    public async Task WithoutChangesAsync(Func<Task> action, CancellationToken ct)
    {
        await _changes.WaitAsync(ct);
        try
        {
            await action();
        }
        finally
        {
            _changes.Release();
        }
    }

    private async Task<Volume?> ChangeLockedAsync(
        string name, Func<Volume, CancellationToken, Task> drain, Func<Volume, CancellationToken, Task<object>> decide, CancellationToken ct)
    {
        if (Find(name) is not { } v) throw new VolumeChangeRefusedException(404, $"no volume named '{name}'");
        if (!v.Writable)
            throw new VolumeChangeRefusedException(409, v.Owned ? $"volume {name}: this controller's lease is not fresh (PostgreSQL unreachable?); try again" : $"volume {name} is owned by another controller: ask it");
        await v.ResyncLock.WaitAsync(ct);
        try
        {
            await v.AppendLock.WaitAsync(ct);
            try
            {
                return await ChangeGatedAsync(v, drain, decide, ct);
            }
            finally
            {
                v.AppendLock.Release();
            }
        }
        finally
        {
            v.ResyncLock.Release();
        }
    }

    private async Task<Volume?> ChangeGatedAsync(
        Volume v, Func<Volume, CancellationToken, Task> drain, Func<Volume, CancellationToken, Task<object>> decide, CancellationToken ct)
    {
        var gate = new RangeFence(0, long.MaxValue);
        lock (v.WriteLock) v.Fences.Add(gate);
        try
        {
            await drain(v, ct);
            var change = await decide(v, ct);
            // Checked again under the fence: the object may have been replaced while this waited for the locks.
            if (!ReferenceEquals(Find(v.Name), v) || v.Retired || !v.Writable)
                throw new VolumeChangeRefusedException(409, $"volume {v.Name} changed hands or shape meanwhile; try again");
            await _stateWrites.WaitAsync(ct);
            try
            {
                // From the append on nothing is cancelled (a client that gives up must not leave memory and the stream
                // apart), and the stream lock is held until the new object is in place: no other record (a verify's)
                // can come between the change and the version the new object starts from.
                await v.StreamLock.WaitAsync(ct);
                try
                {
                    await _stateRetry.ExecuteAsync(async token => await AppendLockedAsync(v, change, token), CancellationToken.None);
                    Volume? fresh;
                    try
                    {
                        fresh = await _stateRetry.ExecuteAsync(async token => await ReadAsync(v.Name, token), CancellationToken.None);
                    }
                    catch (Exception ex)
                    {
                        // Recorded, but not read back: as after a lost lease, the lease keeper reads the volume again
                        // before its next write (until then writes are refused as not owned; nothing is sent).
                        v.Owned = false;
                        logger.LogWarning("Volume {Volume}: {Change} recorded, but the volume could not be read back ({Reason}); it is loaded again by the next lease round",
                            v.Name, change.GetType().Name, ex.Message);
                        throw;
                    }
                    v.Retired = true;
                    if (fresh is null)
                    {
                        _volumes.TryRemove(v.Name, out _);
                        return null;
                    }
                    fresh.LeaseDeadline = v.LeaseDeadline;
                    fresh.OwnerEpoch = v.OwnerEpoch;
                    fresh.Owned = true;
                    fresh.WritesAccepted = Interlocked.Read(ref v.WritesAccepted);
                    fresh.BytesAccepted = Interlocked.Read(ref v.BytesAccepted);
                    foreach (var m in fresh.Mirrors)
                    {
                        if (v.MirrorOn(m.DeviceId) is { } old) m.CarryOver(old);
                    }
                    _volumes[v.Name] = fresh;
                    logger.LogWarning("Volume {Volume}: {Change}; mirrors now {Mirrors}, {Blocks} blocks", v.Name, change.GetType().Name,
                        string.Join(", ", fresh.Mirrors.Select(m => $"{m.DeviceId} ({m.State})")), fresh.Blocks);
                    return fresh;
                }
                finally
                {
                    v.StreamLock.Release();
                }
            }
            finally
            {
                _stateWrites.Release();
            }
        }
        finally
        {
            lock (v.WriteLock) v.Fences.Remove(gate);
            gate.Released.TrySetResult();
        }
    }

    /// <summary>
    /// Appends to the volume's stream at the version this controller last saw, and only while the lease is still
    /// this controller's at the owner epoch it holds (checked in the same transaction, the lease row share-locked so
    /// a takeover waits for it). The version alone is not enough: a controller that was paused past its lease and
    /// woke to a bus message or a timer recorded a mirror state from its stale view before the new owner had
    /// written anything (found by the overlapping schedules: it could declare a mirror in sync that had missed
    /// the new owner's writes). A conflict or a lost lease: this one stops taking writes for the volume.
    /// </summary>
    private async Task AppendToVolumeAsync(Volume v, object e, CancellationToken ct)
    {
        while (true)
        {
            await v.StreamLock.WaitAsync(ct);
            try
            {
                if (!v.Retired)
                {
                    await AppendLockedAsync(v, e, ct);
                    return;
                }
            }
            finally
            {
                v.StreamLock.Release();
            }
            // Replaced by a change of its shape while this waited (a verify's record): it goes to the volume as it is
            // now, at the version the new object starts from; appended at the old one's, it would read as a takeover.
            v = Find(v.Name) is { } now && !ReferenceEquals(now, v) ? now : throw new VolumeChangedException(v.Name);
        }
    }

    private async Task AppendLockedAsync(Volume v, object e, CancellationToken ct)
    {
        await using var session = await store.BeginAsync(ct);
        await using (var lease = new NpgsqlCommand($"""
            SELECT 1 FROM {store.Schema}.volume_leases
            WHERE volume = @v AND controller_id = @c AND epoch = @e AND owner_epoch = @o FOR SHARE
            """, session.Connection, session.Transaction))
        {
            lease.Parameters.AddWithValue("v", v.Name);
            lease.Parameters.AddWithValue("c", options.Id);
            lease.Parameters.AddWithValue("e", Epoch);
            lease.Parameters.AddWithValue("o", v.OwnerEpoch);
            if (await lease.ExecuteScalarAsync(ct) is null) throw TakenOver(v, "its lease is held by another controller now");
        }
        var version = session.Append(VolumeEventTypes.Stream(v.Name), v.StreamVersion, [e]);
        try
        {
            await session.CommitAsync(ct);
        }
        catch (StreamVersionConflictException)
        {
            throw TakenOver(v, "its stream was written by another controller");
        }
        v.StreamVersion = version;
    }

    private VolumeTakenOverException TakenOver(Volume v, string why)
    {
        v.Owned = false;
        logger.LogWarning("Volume {Volume}: {Why}; this controller no longer owns it", v.Name, why);
        return new VolumeTakenOverException($"volume {v.Name} was taken over by another controller");
    }

    /// <summary>Creates a volume. Throws <see cref="StreamVersionConflictException"/> if the name is taken.</summary>
    public async Task<Volume> CreateAsync(VolumeCreated created, CancellationToken ct)
    {
        var version = await store.AppendAsync(VolumeEventTypes.Stream(created.Name), ExpectedVersion.NoStream, [created], ct);
        var v = FromCreated(created);
        v.StreamVersion = version;
        v.Owned = await TryLeaseAsync(v, ct);
        _volumes[v.Name] = v;
        return v;
    }

    /// <summary>
    /// Records a mirror's new state, then applies it in memory: persisted first, so what a restarted controller
    /// loads is never more optimistic than what this one acted on. A write that missed a mirror is answered only
    /// after this returns, so a mirror recorded in sync holds every acknowledged write in its log. Retries while
    /// PostgreSQL is away, up to <see cref="ControllerOptions.StateWriteTimeout"/>. Idempotent: a mirror already
    /// in that state is left alone. <paramref name="verifiedMissedSeq"/>: for <see cref="MirrorState.InSync"/>,
    /// the highest missed sequence the caller's check covered (see <see cref="Mirror.Current"/>).
    /// </summary>
    public async Task SetMirrorStateAsync(Volume v, Mirror m, MirrorState state, string reason, CancellationToken ct, long verifiedMissedSeq = 0)
    {
        await _stateWrites.WaitAsync(ct);
        try
        {
            // The volume changed shape since the caller looked (a write sent before a mirror was attached or detached
            // failed after): the state belongs to the same device's mirror in the volume as it is now, if it has one.
            if (v.Retired)
            {
                // Only along the mirror's own line (CarryOver): a mirror detached and attached again is a new one, and a
                // decision about the old one (a full copy done, a miss) says nothing about it.
                var successor = m;
                while (successor.Successor is { } next) successor = next;
                if (Find(v.Name) is not { } now || ReferenceEquals(now, v) || !now.Mirrors.Contains(successor))
                {
                    logger.LogInformation("Volume {Volume}: mirror on {Device} left the volume; its state {State} is not recorded", v.Name, m.DeviceId, state);
                    return;
                }
                (v, m) = (now, successor);
            }
            if (m.State == state) return;
            var data = new MirrorStateChanged(m.DeviceId, state, reason);
            await _stateRetry.ExecuteAsync(
                async token => await AppendToVolumeAsync(v, data, token),
                ct);
            if (state == MirrorState.InSync) m.Verified(verifiedMissedSeq);
            Apply(m, state, reason);
            logger.LogWarning("Volume {Volume}: mirror on {Device} is now {State}: {Reason}", v.Name, m.DeviceId, state, reason);
        }
        finally
        {
            _stateWrites.Release();
        }
    }

    /// <summary>
    /// Takes or renews the lease; false when another live controller holds it. Renewed only by the same process
    /// (controller id and epoch); taken over when it expired, or from an earlier epoch of the same id (that
    /// process is gone: <see cref="Tagging.ControllerIdentity"/> allows one live process per id). A takeover
    /// raises the lease's owner epoch. On success the volume may take writes until two thirds of the lease,
    /// counted on this host's monotonic clock from before the request was sent.
    /// </summary>
    public async Task<bool> TryLeaseAsync(Volume v, CancellationToken ct)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        await using var cmd = store.DataSource.CreateCommand($"""
            INSERT INTO {store.Schema}.volume_leases AS l (volume, controller_id, epoch, expires_at)
            VALUES (@v, @c, @e, now() + @d)
            ON CONFLICT (volume) DO UPDATE SET controller_id = excluded.controller_id, epoch = excluded.epoch, expires_at = excluded.expires_at,
                owner_epoch = CASE WHEN (l.controller_id, l.epoch) = (excluded.controller_id, excluded.epoch) THEN l.owner_epoch ELSE l.owner_epoch + 1 END
            WHERE (l.controller_id = excluded.controller_id AND l.epoch <= excluded.epoch) OR l.expires_at < now()
            RETURNING owner_epoch
            """);
        cmd.Parameters.AddWithValue("v", v.Name);
        cmd.Parameters.AddWithValue("c", options.Id);
        cmd.Parameters.AddWithValue("e", Epoch);
        cmd.Parameters.AddWithValue("d", options.LeaseDuration);
        if (await cmd.ExecuteScalarAsync(ct) is not long ownerEpoch) return false;
        v.OwnerEpoch = ownerEpoch;
        v.LeaseDeadline = started + (long)(options.LeaseDuration.TotalSeconds * 2 / 3 * System.Diagnostics.Stopwatch.Frequency);
        return true;
    }

    /// <summary>Records a verify's summary in the volume's stream (as the owner, at the version it last saw).</summary>
    public Task RecordVerifyAsync(Volume v, VerifyCompleted e, CancellationToken ct) => AppendToVolumeAsync(v, e, ct);

    /// <summary>
    /// Gives the next <paramref name="blocks"/> blocks of the extension to an append and records that before
    /// returning. Appends to one volume are placed one at a time; the cost is one PostgreSQL append each.
    /// </summary>
    public async Task<long> ReserveExtensionAsync(Volume v, int blocks, CancellationToken ct)
    {
        await v.AppendLock.WaitAsync(ct);
        try
        {
            v.ThrowIfRetired();
            var first = v.TotalBlocks;
            await AppendToVolumeAsync(v, new ExtensionReserved(first, blocks), ct);
            v.ExtensionBlocks += blocks;
            return first;
        }
        finally
        {
            v.AppendLock.Release();
        }
    }

    private static void Apply(Mirror m, MirrorState state, string reason)
    {
        if (state == MirrorState.NeedsFullCopy) m.FullCopyPending = true;
        else if (state == MirrorState.InSync) m.FullCopyPending = false;
        m.State = state;
        m.Reason = reason;
    }

    private static Volume FromCreated(VolumeCreated c) =>
        new(c.Name, c.BlockSize, c.Blocks, c.MinMirrors, [.. c.Mirrors.Select((m, i) => new Mirror(i, m.DeviceId, m.ObjectId))]);
}

/// <summary>A change of a volume's shape refused before anything happened: <paramref name="status"/> is the HTTP status to answer.</summary>
internal sealed class VolumeChangeRefusedException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}

/// <summary>Another controller has taken the volume: this one may not write it or record anything for it.</summary>
internal sealed class VolumeTakenOverException(string message) : Exception(message);
