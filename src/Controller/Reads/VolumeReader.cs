using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Controller.Reads;

/// <summary>
/// Reads a volume range from an in-sync mirror, after that mirror has applied every write sent to it
/// before the read (so a read always returns what an earlier acknowledged write put there).
/// </summary>
internal sealed class VolumeReader(WritePipeline pipeline, DeviceReader devices, ControllerOptions options, ILogger<VolumeReader> logger)
{
    public async Task<byte[]> ReadAsync(Volume v, long firstBlock, int blocks, CancellationToken ct)
    {
        var offset = firstBlock * v.BlockSize;
        var length = blocks * v.BlockSize;
        var reasons = new List<string>();
        foreach (var m in v.Mirrors)
        {
            if (m.State != MirrorState.InSync)
            {
                reasons.Add($"{m.DeviceId}: {m.State}");
                continue;
            }
            try
            {
                await Task.WhenAll(pipeline.Unapplied(v, m)).WaitAsync(options.ReadWaitTimeout, ct);
                var data = await devices.ReadAsync(m.DeviceId, m.ObjectId, offset, length, ct);
                return data ?? new byte[length];
            }
            catch (Exception ex) when (ex is TimeoutException or MirrorUnavailableException or HttpRequestException)
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
