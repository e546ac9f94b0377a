using System.Diagnostics;
using TaggedMirror.Controller.Tokens;

namespace TaggedMirror.Controller.Fanout;

/// <summary>
/// The controller's view of one device's log: tokens waiting to ride on the next transaction to it (M5),
/// and how many bytes it has been sent but not applied (flow control against the log's retention).
/// </summary>
internal sealed class DeviceChannel(string deviceId, long maxLagBytes, long repairBytesInFlight, Confluent.Kafka.IProducer<byte[]?, byte[]?> producer)
{
    /// <summary>This device's own producer.</summary>
    public Confluent.Kafka.IProducer<byte[]?, byte[]?> Producer { get; } = producer;

    private readonly Lock _lock = new();
    private long _unappliedBytes;
    private long _lastSendTimestamp = Stopwatch.GetTimestamp();
    private TaskCompletionSource _room = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string DeviceId { get; } = deviceId;

    public string Topic { get; } = Contracts.Topics.Device(deviceId);

    public long UnappliedBytes => Interlocked.Read(ref _unappliedBytes);

    /// <summary>Tokens waiting to ride on the next transaction or barrier to this device (M5).</summary>
    public TokenQueue Tokens { get; } = new();

    public TimeSpan SinceLastSend => Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastSendTimestamp));

    public Dictionary<int, long> AppliedOffsets { get; } = [];

    /// <summary>The topic's partitions, once known.</summary>
    public int[]? Partitions { get; set; }

    /// <summary>Repairs in flight to this device, bounded in bytes (<see cref="Fanout.RepairBudget"/>).</summary>
    public RepairBudget Repairs { get; } = new(repairBytesInFlight);

    /// <summary>The barrier being sent to this device, if any: one at a time.</summary>
    public Task? BarrierInFlight { get; set; }

    public long LastBarrierTimestamp { get; set; }

    /// <summary>Looks for the device's log again while a barrier waits for it (<see cref="BarrierPublisher"/>).</summary>
    public TaggedMirror.Hosting.Kafka.LeaderProbe LogProbe { get; } = new(producer, Contracts.Topics.Device(deviceId));

    /// <summary>Waits until the device is less than the lag bound behind. False on timeout: the caller degrades the mirror.</summary>
    public async ValueTask<bool> WaitForRoomAsync(long bytes, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            Task room;
            lock (_lock)
            {
                // A single write larger than the bound may go when nothing else is outstanding.
                if (_unappliedBytes == 0 || _unappliedBytes + bytes <= maxLagBytes) return true;
                room = _room.Task;
            }
            var left = deadline - Stopwatch.GetTimestamp();
            if (left <= 0) return false;
            try
            {
                await room.WaitAsync(TimeSpan.FromSeconds((double)left / Stopwatch.Frequency), ct);
            }
            catch (TimeoutException)
            {
                return false;
            }
        }
    }

    public void OnSent(long bytes)
    {
        Interlocked.Add(ref _unappliedBytes, bytes);
        Interlocked.Exchange(ref _lastSendTimestamp, Stopwatch.GetTimestamp());
    }

    public void OnTokensOnlySent() => Interlocked.Exchange(ref _lastSendTimestamp, Stopwatch.GetTimestamp());

    /// <summary>Bytes left the device's backlog: applied, or their copy failed.</summary>
    public void OnSettled(long bytes)
    {
        TaskCompletionSource room;
        lock (_lock)
        {
            _unappliedBytes = Math.Max(0, _unappliedBytes - bytes);
            room = _room;
            _room = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        room.TrySetResult();
    }

    public void RecordOffsets(IEnumerable<(int Partition, long NextOffset)> offsets)
    {
        lock (_lock)
        {
            foreach (var (p, o) in offsets)
                AppliedOffsets[p] = Math.Max(AppliedOffsets.GetValueOrDefault(p), o);
        }
    }

    public Dictionary<int, long> SnapshotOffsets()
    {
        lock (_lock) return new(AppliedOffsets);
    }
}
