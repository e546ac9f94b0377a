using Confluent.Kafka;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Reconciliation;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller.Reads;

/// <summary>
/// Reads a volume range from a current mirror (in sync, missed nothing since), after that mirror has applied
/// every write that overlaps the range and was sent before the read, so a read always returns what an earlier
/// acknowledged write put there. The first read from a mirror after this controller took the volume (a start,
/// a restart, a takeover) also waits until the mirror applied its whole log as it stood then: writes a
/// previous epoch or owner acknowledged at log level are not tracked in memory here. A read that ran while the volume
/// changed shape is made again on the volume as it is now.
/// </summary>
internal sealed class VolumeReader(
    WritePipeline pipeline, DeviceReader devices, LogProgress progress, VolumeCatalog catalog, ControllerOptions options, ILogger<VolumeReader> logger)
{
    public Task<byte[]> ReadAsync(Volume v, long firstBlock, int blocks, CancellationToken ct) =>
        FromCurrentMirrorAsync(v, firstBlock, blocks, "read", async (m, c) =>
            await devices.ReadAsync(m.DeviceId, m.ObjectId, firstBlock * v.BlockSize, blocks * v.BlockSize, c) ?? new byte[blocks * v.BlockSize], ct);

    /// <summary>
    /// Where blocks [<paramref name="firstBlock"/>, +<paramref name="blocks"/>) hold data on a current mirror, with the
    /// same wait as a read: every part between the data ranges, up to <see cref="Contracts.Api.ObjectAllocation.Until"/>,
    /// reads as zeros after every write answered before the call (NBD's BLOCK_STATUS, so a copying client may skip it).
    /// </summary>
    public Task<Contracts.Api.ObjectAllocation> AllocationAsync(Volume v, long firstBlock, long blocks, CancellationToken ct) =>
        FromCurrentMirrorAsync(v, firstBlock, blocks, "block status", async (m, c) =>
        {
            var (offset, length) = (firstBlock * v.BlockSize, blocks * v.BlockSize);
            return await devices.AllocationAsync(m.DeviceId, m.ObjectId, offset, length, c) ?? new Contracts.Api.ObjectAllocation([], [], offset + length);
        }, ct);

    /// <summary>
    /// <paramref name="ask"/> a current mirror once it has applied every write to the range answered before this call;
    /// again, from the volume as it is now, when it changed shape meanwhile.
    /// </summary>
    private async Task<T> FromCurrentMirrorAsync<T>(Volume v, long firstBlock, long blocks, string what, Func<Mirror, CancellationToken, Task<T>> ask, CancellationToken ct)
    {
        while (true)
        {
            var answer = await OnceAsync(v, firstBlock, blocks, what, ask, ct);
            // The volume changed shape while this read ran: the mirror it read may have been detached and its object
            // removed under it (a device answers "no such object" with zeros). Read again from the volume as it is now.
            if (!v.Retired) return answer;
            v = catalog.Find(v.Name) is { } now && !ReferenceEquals(now, v)
                ? now
                : throw new ReadFailedException($"volume {v.Name} changed or was deleted while it was read; try again");
        }
    }

    private async Task<T> OnceAsync<T>(Volume v, long firstBlock, long blocks, string what, Func<Mirror, CancellationToken, Task<T>> ask, CancellationToken ct)
    {
        // Only the owner tracks the writes in flight; another controller could answer with an older range.
        if (!v.Owned) throw new ReadFailedException($"volume {v.Name} is owned by another controller: read it there");
        var reasons = new List<string>();
        foreach (var m in v.Mirrors)
        {
            if (!m.Current)
            {
                reasons.Add(m.State == MirrorState.InSync ? $"{m.DeviceId}: missed a write" : $"{m.DeviceId}: {m.State}");
                continue;
            }
            try
            {
                var ownership = v.Ownership;
                if (!m.CaughtUpSince(ownership))
                {
                    await progress.WaitCaughtUpAsync(m.DeviceId, m.ObjectId, options.ReadWaitTimeout, ct);
                    m.MarkCaughtUp(ownership);
                }
                await pipeline.AppliedOverlappingAsync(v, m, firstBlock, blocks).WaitAsync(options.ReadWaitTimeout, ct);
                return await ask(m, ct);
            }
            catch (Exception ex) when (ex is TimeoutException or MirrorUnavailableException or HttpRequestException or KafkaException)
            {
                // The device's address, if a request to it failed, was dropped by DeviceReader itself.
                reasons.Add($"{m.DeviceId}: {ex.Message}");
                logger.LogInformation("The {What} of {Volume} from {Device} failed, trying another mirror: {Reason}", what, v.Name, m.DeviceId, ex.Message);
            }
        }
        throw new ReadFailedException($"no mirror of {v.Name} could serve the {what} ({string.Join("; ", reasons)})");
    }
}

internal sealed class ReadFailedException(string message) : Exception(message);
