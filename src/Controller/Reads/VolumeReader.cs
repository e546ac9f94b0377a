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
    public async Task<byte[]> ReadAsync(Volume v, long firstBlock, int blocks, CancellationToken ct)
    {
        while (true)
        {
            var data = await ReadOnceAsync(v, firstBlock, blocks, ct);
            // The volume changed shape while this read ran: the mirror it read may have been detached and its object
            // removed under it (a device answers "no such object" with zeros). Read again from the volume as it is now.
            if (!v.Retired) return data;
            v = catalog.Find(v.Name) is { } now && !ReferenceEquals(now, v)
                ? now
                : throw new ReadFailedException($"volume {v.Name} changed or was deleted while it was read; try again");
        }
    }

    private async Task<byte[]> ReadOnceAsync(Volume v, long firstBlock, int blocks, CancellationToken ct)
    {
        // Only the owner tracks the writes in flight; another controller could answer with an older range.
        if (!v.Owned) throw new ReadFailedException($"volume {v.Name} is owned by another controller: read it there");
        var offset = firstBlock * v.BlockSize;
        var length = blocks * v.BlockSize;
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
                    await progress.WaitCaughtUpAsync(m.DeviceId, options.ReadWaitTimeout, ct);
                    m.MarkCaughtUp(ownership);
                }
                await pipeline.AppliedOverlappingAsync(v, m, firstBlock, blocks).WaitAsync(options.ReadWaitTimeout, ct);
                var data = await devices.ReadAsync(m.DeviceId, m.ObjectId, offset, length, ct);
                return data ?? new byte[length];
            }
            catch (Exception ex) when (ex is TimeoutException or MirrorUnavailableException or HttpRequestException or KafkaException)
            {
                devices.Forget(m.DeviceId);
                reasons.Add($"{m.DeviceId}: {ex.Message}");
                logger.LogInformation("Read of {Volume} from {Device} failed, trying another mirror: {Reason}", v.Name, m.DeviceId, ex.Message);
            }
        }
        throw new ReadFailedException($"no mirror of {v.Name} could serve the read ({string.Join("; ", reasons)})");
    }
}

internal sealed class ReadFailedException(string message) : Exception(message);
