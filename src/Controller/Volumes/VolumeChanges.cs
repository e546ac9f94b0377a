using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Contracts.TagTable;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Rebuild;
using TaggedMirror.Controller.Tagging;
using TaggedMirror.Hosting.Events;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.Controller.Volumes;

/// <summary>
/// The operator's changes to a volume's shape, online: attach a mirror (it gets a full copy under range fences
/// while writes go on, and is read from once in sync), detach one (never the last in-sync one), replace one (attach,
/// and detach the old once the new is in sync: <see cref="Reconciliation.MirrorMaintenance"/> finishes it, so it
/// survives a restart), grow the volume, delete it. Each is an event in the volume's stream, made under
/// <see cref="VolumeCatalog.ChangeAsync"/>; objects a change leaves behind are removed by a
/// <see cref="Contracts.Transactions.TransactionKind.Delete"/> in their device's log. Design: docs/design.md,
/// "Changing a volume's mirrors".
/// </summary>
internal sealed class VolumeChanges(
    VolumeCatalog catalog,
    WritePipeline pipeline,
    DeviceLog log,
    TagGenerator tags,
    RebuildService rebuilds,
    EventStreams store,
    ControllerOptions options,
    ControllerTelemetry telemetry,
    ILogger<VolumeChanges> logger)
{
    /// <summary>At most this many mirrors per volume (the write path keeps one bit per mirror).</summary>
    public const int MaxMirrors = 8;

    /// <summary>Volumes are at most this large (1 TiB), whatever the block size.</summary>
    public const long MaxVolumeBytes = 1L << 40;

    /// <summary>
    /// Attaches a mirror on <paramref name="deviceId"/>; with <paramref name="replaces"/>, the mirror on that device is
    /// detached once the new one is in sync. The new mirror's object is cleared first (a Delete ahead of its first
    /// write in the device's log), so nothing an earlier attach left there can be read as this volume's.
    /// </summary>
    public async Task<Volume> AttachAsync(string name, string deviceId, string? replaces, CancellationToken ct)
    {
        using var span = Start(replaces is null ? "volume attach" : "volume replace", name, deviceId);
        void Check(Volume v)
        {
            if (v.MirrorOn(deviceId) is not null)
                throw new VolumeChangeRefusedException(409, $"{deviceId} already holds a mirror of {name}");
            if (replaces is not null && v.MirrorOn(replaces) is null)
                throw new VolumeChangeRefusedException(404, $"{replaces} holds no mirror of {name}: mirrors are on {Devices(v)}");
            if (v.Mirrors.Length >= MaxMirrors)
                throw new VolumeChangeRefusedException(409, $"{name} has {v.Mirrors.Length} mirrors, the most a volume may have");
            if (Array.Find(v.Mirrors, m => m.Replaces is not null && v.MirrorOn(m.Replaces) is not null && m.State != MirrorState.InSync) is { } other)
                throw new VolumeChangeRefusedException(409, $"{other.DeviceId} is still being copied to replace {other.Replaces}; wait for it (tm status {name})");
        }
        var objectId = Names.ObjectId(name, deviceId);
        var fresh = await catalog.ChangeAsync(name, DrainAsync, (v, _) =>
        {
            Check(v); // again, as it is now: the volume may have changed while writes drained
            var why = replaces is null ? "attached; a full copy brings it in sync" : $"attached to replace {replaces}; a full copy brings it in sync";
            return Task.FromResult<object>(new MirrorAttached(deviceId, objectId, replaces, why));
        }, ct, before: async (v, token) =>
        {
            // Under the change lock (a rebuild starts under it too), before writes are held.
            Check(v);
            if (!await rebuilds.DeviceRegisteredAsync(deviceId, token))
                throw new VolumeChangeRefusedException(404, $"no device named {deviceId} has registered: start its agent first");
            if (await rebuilds.RunningAsync(deviceId, token) is { } rebuild)
                throw new VolumeChangeRefusedException(409, $"device {deviceId} is being rebuilt (rebuild {rebuild}); attach it once that is done");
            try
            {
                // Whatever an earlier attach left there is removed before this one's first write (same key, same partition).
                await SendDeleteAsync(v, deviceId, objectId);
            }
            catch (KafkaException ex)
            {
                throw new VolumeChangeRefusedException(503, $"the log of {deviceId} does not take messages ({ex.Message}); nothing was changed");
            }
        });
        logger.LogWarning("Volume {Volume}: mirror on {Device} attached{Replacing}", name, deviceId, replaces is null ? "" : $" to replace {replaces}");
        return fresh!;
    }

    /// <summary>
    /// Detaches the mirror on <paramref name="deviceId"/>; refused when it would leave fewer mirrors than the volume
    /// needs for a write, or no mirror in sync (it would take the only copy known complete). Its object is removed by a
    /// Delete after its last write in the device's log; the answer says whether that is in the log.
    /// </summary>
    public async Task<(Volume Volume, ObjectRemoval Removal)> DetachAsync(string name, string deviceId, string reason, CancellationToken ct)
    {
        using var span = Start("volume detach", name, deviceId);
        Mirror? leaving = null;
        Volume? old = null;
        (ObjectRemoval? Failed, long Before) sent = default;
        var fresh = await catalog.ChangeAsync(name, DrainAsync, (v, _) =>
        {
            if (v.MirrorOn(deviceId) is not { } m)
                throw new VolumeChangeRefusedException(404, $"{deviceId} holds no mirror of {name}: mirrors are on {Devices(v)}");
            var rest = v.Mirrors.Where(x => x != m).ToList();
            if (rest.Count == 0)
                throw new VolumeChangeRefusedException(409, $"{deviceId} holds the last mirror of {name}: a volume keeps at least one (tm delete {name} removes the volume)");
            if (rest.Count < v.MinMirrors)
                throw new VolumeChangeRefusedException(409, $"{name} needs {v.MinMirrors} mirrors for a write (minMirrors); detaching {deviceId} would leave {rest.Count}. Attach another first");
            if (!rest.Any(x => x.Current))
            {
                throw new VolumeChangeRefusedException(409, m.Current
                    ? $"{deviceId} holds the only mirror of {name} in sync: detaching it would leave no complete copy. Wait until another is in sync (tm status {name})"
                    : $"no other mirror of {name} is in sync ({string.Join(", ", rest.Select(x => $"{x.DeviceId}: {x.State}"))}); wait until one is (tm status {name})");
            }
            (leaving, old) = (m, v);
            return Task.FromResult<object>(new MirrorDetached(deviceId, reason));
        }, ct, after: async () => sent = await SendRemovalAsync(old!, leaving!.DeviceId, leaving.ObjectId));
        var removal = sent.Failed ?? await WaitRemovedAsync(leaving!.DeviceId, leaving.ObjectId, sent.Before);
        logger.LogWarning("Volume {Volume}: mirror on {Device} detached ({Reason}); its object: {Removal}", name, deviceId, reason, removal.Outcome);
        return (fresh!, removal);
    }

    /// <summary>
    /// Grows the volume to <paramref name="blocks"/> blocks. The extension's blocks (appends) keep their numbers and are
    /// in the base range from then on, so the new size is at least the old base range and extension together.
    /// </summary>
    public async Task<Volume> GrowAsync(string name, long blocks, CancellationToken ct)
    {
        using var span = Start("volume grow", name, null);
        span?.SetTag(TelemetryAttributes.Blocks, blocks);
        var fresh = await catalog.ChangeAsync(name, DrainAsync, (v, _) =>
        {
            if (blocks <= v.Blocks)
                throw new VolumeChangeRefusedException(400, $"{name} has {v.Blocks} blocks; a volume only grows (asked for {blocks})");
            if (blocks < v.TotalBlocks)
                throw new VolumeChangeRefusedException(400, $"{name}'s appends reach block {v.TotalBlocks - 1}: grow it to at least {v.TotalBlocks} blocks (asked for {blocks})");
            if (blocks > MaxVolumeBytes / v.BlockSize)
                throw new VolumeChangeRefusedException(400, $"{blocks} blocks of {v.BlockSize} bytes is more than 1 TiB, the largest volume");
            return Task.FromResult<object>(new VolumeGrown(blocks, v.Blocks, v.ExtensionBlocks));
        }, ct);
        logger.LogWarning("Volume {Volume}: grown to {Blocks} blocks", name, blocks);
        return fresh!;
    }

    /// <summary>
    /// Deletes the volume: recorded first (the name is gone from then on and never taken again), then a Delete goes to
    /// every mirror's device log after the volume's last write there. The topics keep what they hold until retention.
    /// </summary>
    public async Task<IReadOnlyList<ObjectRemoval>> DeleteAsync(string name, CancellationToken ct)
    {
        using var span = Start("volume delete", name, null);
        Volume? old = null;
        var sent = Array.Empty<(ObjectRemoval? Failed, long Before)>();
        await catalog.ChangeAsync(name, DrainAsync, (v, _) =>
        {
            old = v;
            return Task.FromResult<object>(new VolumeDeleted(name, [.. v.Mirrors.Select(m => m.DeviceId)]));
        }, ct, after: async () => sent = await Task.WhenAll(old!.Mirrors.Select(m => SendRemovalAsync(old, m.DeviceId, m.ObjectId))));
        var removals = await Task.WhenAll(old!.Mirrors.Select((m, i) => sent[i].Failed is { } failed ? Task.FromResult(failed) : WaitRemovedAsync(m.DeviceId, m.ObjectId, sent[i].Before)));
        logger.LogWarning("Volume {Volume} deleted; its objects: {Removals}", name, string.Join(", ", removals.Select(r => $"{r.Device}: {r.Outcome}")));
        return removals;
    }

    private readonly ConcurrentDictionary<(string Device, string ObjectId), long> _orphanRemovals = new();

    /// <summary>
    /// Sends the removal again for every object a device holds for no mirror: a detached mirror's or a deleted volume's
    /// whose Delete never reached the device's log (the log did not take messages, or this controller died between the
    /// record and the send). Only the owner of a volume decides its objects are orphans (it made its shape or read it
    /// again when it took the volume); a deleted volume's, any controller. One removal per object in this controller's
    /// life once it is in the log; a device that already applied one has no row any more.
    /// </summary>
    public async Task RemoveOrphansAsync(CancellationToken ct)
    {
        var objects = new List<(string Device, string ObjectId, int BlockSize, long Blocks)>();
        try
        {
            await using var cmd = store.DataSource.CreateCommand($"SELECT device_id, object_id, block_size, object_blocks FROM {store.Schema}.device_objects");
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) objects.Add((r.GetString(0), r.GetString(1), r.GetInt32(2), r.GetInt64(3)));
        }
        catch (Npgsql.PostgresException ex) when (Hosting.ForeignTables.IsMissing(ex))
        {
            return; // no device agent has started yet
        }
        foreach (var (device, objectId, blockSize, blocks) in objects)
        {
            // Checked and sent with no change under way: an attach of the same device cannot slip in between and have
            // its new object's writes land before this removal.
            await catalog.WithoutChangesAsync(() => RemoveIfOrphanAsync(device, objectId, blockSize, blocks, ct), ct);
        }
    }

    private async Task RemoveIfOrphanAsync(string device, string objectId, int blockSize, long blocks, CancellationToken ct)
    {
        var now = Stopwatch.GetTimestamp();
        var volume = Names.VolumeOfObject(objectId);
        long ownerEpoch;
        if (catalog.Find(volume) is { } v)
        {
            if (!v.Owned || v.Retired || v.MirrorOn(device) is not null || Names.ObjectId(volume, device) != objectId) return;
            ownerEpoch = v.OwnerEpoch;
        }
        else if (await catalog.WasDeletedAsync(volume, ct))
        {
            ownerEpoch = await LastOwnerEpochAsync(volume, ct);
        }
        else
        {
            return; // created by another controller and not loaded here yet
        }
        // Once in the device's log, the removal stays there until the device applies it (a device that is down does when
        // it is back): it is not sent again by this process, so a device gone for good does not pile them up.
        if (_orphanRemovals.ContainsKey((device, objectId))) return;
        try
        {
            await log.SendDeleteAsync(log.Channel(device), Encoding.UTF8.GetBytes(objectId), new Tag(tags.ControllerId, tags.Epoch, 0), blockSize, blocks, ownerEpoch);
            _orphanRemovals[(device, objectId)] = now;
            logger.LogWarning("Object {Object} on {Device} belongs to no mirror (a removal that never reached its log): its removal is in the log now", objectId, device);
        }
        catch (KafkaException ex)
        {
            logger.LogInformation("Object {Object} on {Device} belongs to no mirror; its removal could not be sent: {Reason}", objectId, device, ex.Message);
        }
    }

    /// <summary>The owner epoch of the volume's lease as it was left (a deleted volume keeps its row), at least 1.</summary>
    private async Task<long> LastOwnerEpochAsync(string volume, CancellationToken ct)
    {
        await using var cmd = store.DataSource.CreateCommand($"SELECT owner_epoch FROM {store.Schema}.volume_leases WHERE volume = @v");
        cmd.Parameters.AddWithValue("v", volume);
        return Math.Max(1, await cmd.ExecuteScalarAsync(ct) as long? ?? 1);
    }

    private Task DrainAsync(Volume v, CancellationToken ct) =>
        pipeline.WaitDeliveredAsync(v, options.DeliveryTimeout + TimeSpan.FromSeconds(5), ct);

    /// <summary>
    /// Sends the object's Delete (the caller holds the catalog's change lock: no attach of the same device can come
    /// between). Returns the refusal when it could not be sent, else how many removals the device had recorded before.
    /// </summary>
    private async Task<(ObjectRemoval? Failed, long Before)> SendRemovalAsync(Volume v, string deviceId, string objectId)
    {
        try
        {
            var before = await DeletionsAsync(deviceId, objectId, CancellationToken.None);
            await SendDeleteAsync(v, deviceId, objectId);
            return (null, before);
        }
        catch (Exception ex) when (ex is KafkaException or Npgsql.NpgsqlException)
        {
            return (new ObjectRemoval(deviceId, objectId, $"not removed yet: {ex.Message}; the controller sends the removal again once the device's log takes it"), 0);
        }
    }

    /// <summary>
    /// Waits (briefly) for the device to apply a removal sent. A device that is down applies it when it comes back: it is
    /// in its log after every write to the object.
    /// </summary>
    private async Task<ObjectRemoval> WaitRemovedAsync(string deviceId, string objectId, long before)
    {
        var deadline = Stopwatch.GetTimestamp() + 5 * Stopwatch.Frequency;
        while (Stopwatch.GetTimestamp() < deadline)
        {
            try
            {
                if (await DeletionsAsync(deviceId, objectId, CancellationToken.None) > before) return new ObjectRemoval(deviceId, objectId, "removed");
            }
            catch (Npgsql.NpgsqlException)
            {
                break;
            }
            await Task.Delay(100);
        }
        return new ObjectRemoval(deviceId, objectId, "removal in its log; the device applies it when it reaches it");
    }

    private async Task SendDeleteAsync(Volume v, string deviceId, string objectId)
    {
        _orphanRemovals.TryRemove((deviceId, objectId), out _); // the object's story starts again: the sweep may send its removal again
        await log.SendDeleteAsync(log.Channel(deviceId), Encoding.UTF8.GetBytes(objectId), new Tag(tags.ControllerId, tags.Epoch, 0), v.BlockSize, v.Blocks, v.OwnerEpoch);
    }

    /// <summary>How many times the device recorded removing the object (its stream's <c>object_deleted</c> events).</summary>
    private async Task<long> DeletionsAsync(string deviceId, string objectId, CancellationToken ct)
    {
        await using var cmd = store.DataSource.CreateCommand(
            $"SELECT count(*) FROM {store.Schema}.mt_events WHERE stream_id = @s AND type = @t AND data->>'objectId' = @o");
        cmd.Parameters.AddWithValue("s", TagTableEventTypes.Stream(deviceId));
        cmd.Parameters.AddWithValue("t", TagTableEventTypes.ObjectDeleted);
        cmd.Parameters.AddWithValue("o", objectId);
        return (long)(await cmd.ExecuteScalarAsync(ct))!;
    }

    private Activity? Start(string operation, string volume, string? device)
    {
        var span = telemetry.Source.StartActivity(operation);
        span?.SetTag(TelemetryAttributes.Volume, volume);
        if (device is not null) span?.SetTag(TelemetryAttributes.Device, device);
        return span;
    }

    private static string Devices(Volume v) => string.Join(", ", v.Mirrors.Select(m => m.DeviceId));
}
