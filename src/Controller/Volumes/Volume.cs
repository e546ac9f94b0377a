using System.Collections.Concurrent;
using TaggedMirror.Controller.Fanout;

namespace TaggedMirror.Controller.Volumes;

/// <summary>A mirrored volume as the owning controller keeps it in memory.</summary>
internal sealed class Volume(string name, int blockSize, long blocks, int minMirrors, Mirror[] mirrors)
{
    public string Name { get; } = name;

    public int BlockSize { get; } = blockSize;

    /// <summary>Size of the volume (and of each mirror object's base range) in blocks.</summary>
    public long Blocks { get; } = blocks;

    /// <summary>A write succeeds when at least this many mirrors hold it.</summary>
    public int MinMirrors { get; } = minMirrors;

    public Mirror[] Mirrors { get; } = mirrors;

    /// <summary>Blocks appended past <see cref="Blocks"/> so far (the objects' extension).</summary>
    public long ExtensionBlocks { get; set; }

    public long TotalBlocks => Blocks + ExtensionBlocks;

    /// <summary>
    /// Held while a write takes its tag and enqueues its copies, so every mirror's log receives this
    /// volume's writes in tag order; overlapping writes then end the same on every mirror.
    /// </summary>
    public Lock WriteLock { get; } = new();

    /// <summary>Serialises extension reservations, which are recorded in PostgreSQL before the append is sent.</summary>
    public SemaphoreSlim AppendLock { get; } = new(1, 1);

    /// <summary>Writes sent and not yet applied everywhere they were sent, by sequence (for read-your-writes).</summary>
    public ConcurrentDictionary<long, InflightWrite> Inflight { get; } = new();

    /// <summary>Ranges being resynced; new writes overlapping one wait for it (guarded by <see cref="WriteLock"/>).</summary>
    public List<RangeFence> Fences { get; } = [];

    /// <summary>One resync or full-copy step at a time per volume.</summary>
    public SemaphoreSlim ResyncLock { get; } = new(1, 1);

    /// <summary>
    /// This controller's appends to the volume's streams (<c>volume-</c>, <c>resync-</c>), one at a time: two appends
    /// from one process at once raced on the version the volume stream expects (and Marten's quick append raced
    /// on creating the resync stream, 23505), and a conflict reads as a takeover.
    /// </summary>
    public SemaphoreSlim StreamLock { get; } = new(1, 1);

    private bool _owned;

    /// <summary>True while this controller holds the volume's lease.</summary>
    public bool Owned
    {
        get => Volatile.Read(ref _owned);
        set
        {
            // Each time the lease is (re)taken the mirrors' applied state must be checked again before a read.
            if (value && !Volatile.Read(ref _owned)) Interlocked.Increment(ref _ownership);
            Volatile.Write(ref _owned, value);
        }
    }

    private long _ownership;

    /// <summary>How many times this controller has taken the volume's lease (see <see cref="Mirror.CaughtUpSince"/>).</summary>
    public long Ownership => Interlocked.Read(ref _ownership);

    private long _leaseDeadline;

    /// <summary>
    /// Until when (a <see cref="System.Diagnostics.Stopwatch"/> timestamp, monotonic) this controller may accept
    /// and acknowledge writes: the start of the last successful renewal plus two thirds of the lease, so it stops
    /// well before the lease can expire and another controller take the volume.
    /// </summary>
    public long LeaseDeadline
    {
        get => Interlocked.Read(ref _leaseDeadline);
        set => Interlocked.Exchange(ref _leaseDeadline, value);
    }

    /// <summary>
    /// The version of the volume's stream as this controller last saw or wrote it. Every append to the stream is
    /// made with it as the expected version, so a controller that lost the volume cannot record anything more
    /// for it (a state change, an extension reservation) over the new owner's records.
    /// </summary>
    public long StreamVersion { get; set; }

    /// <summary>The lease's fencing number: raised each time the volume passes to another process.</summary>
    public long OwnerEpoch { get; set; }

    /// <summary>Owned, and the lease was renewed recently enough that no other controller can have it.</summary>
    public bool Writable => Owned && System.Diagnostics.Stopwatch.GetTimestamp() < LeaseDeadline;

    public long WritesAccepted;

    public long BytesAccepted;

    public Mirror? MirrorOn(string deviceId) => Array.Find(Mirrors, m => m.DeviceId == deviceId);

    private volatile bool _retired;

    /// <summary>
    /// Set when the volume's shape changed (a mirror attached or detached, the volume grown or deleted) and the
    /// catalog replaced this object by one read from the stream (<see cref="VolumeCatalog.ChangeAsync"/>). Nothing new
    /// starts on a retired object: a write about to take its tag starts again on the new one, a copy step or a
    /// verify range stops. Its writes already sent finish on it.
    /// </summary>
    public bool Retired
    {
        get => _retired;
        set => _retired = value;
    }

    /// <summary>Throws <see cref="VolumeChangedException"/> when this object was replaced (see <see cref="Retired"/>).</summary>
    public void ThrowIfRetired()
    {
        if (_retired) throw new VolumeChangedException(Name);
    }
}

/// <summary>The volume's mirrors or size changed while an operation was under way on the old shape: it starts again or stops.</summary>
internal sealed class VolumeChangedException(string volume)
    : Exception($"volume {volume} changed shape (a mirror attached or detached, grown or deleted) while this was under way");

/// <summary>One mirror of a volume: a storage object on a device (M6).</summary>
internal sealed class Mirror(int index, string deviceId, string objectId)
{
    public int Index { get; } = index;

    public string DeviceId { get; } = deviceId;

    public string ObjectId { get; } = objectId;

    public MirrorState State { get; set; } = MirrorState.InSync;

    public string? Reason { get; set; }

    private long _lastMissedSeq;
    private long _verifiedMissedSeq;
    private long _caughtUpOwnership = -1;

    /// <summary>
    /// Highest sequence of this epoch that this mirror missed: not sent to it, its copy failed, or it was lost
    /// under it (0: none). Raised synchronously, before the write is settled, so no read or copy source can
    /// choose this mirror in the window before its new state is recorded. Reconciliation must cover it
    /// before the mirror is in sync again.
    /// </summary>
    public long LastSkippedSeq => Interlocked.Read(ref _lastMissedSeq);

    /// <summary>
    /// Records that this mirror missed the write with sequence <paramref name="seq"/>, and on the mirror on the same
    /// device of the object that replaced this volume (see <see cref="Successor"/>): a write sent before a mirror
    /// was attached or detached may fail after it.
    /// </summary>
    public void MarkMissed(long seq)
    {
        var seen = Interlocked.Read(ref _lastMissedSeq);
        while (seq > seen)
        {
            var was = Interlocked.CompareExchange(ref _lastMissedSeq, seq, seen);
            if (was == seen) break;
            seen = was;
        }
        Successor?.MarkMissed(seq);
    }

    private Mirror? _successor;

    /// <summary>This device's mirror in the volume object that replaced this one's (<see cref="Volume.Retired"/>), if it still has one.</summary>
    public Mirror? Successor
    {
        get => Volatile.Read(ref _successor);
        set => Volatile.Write(ref _successor, value);
    }

    /// <summary>
    /// Takes over what this controller knows in memory about the same device's mirror in the volume object this one
    /// replaces: writes it missed and what covered them, its owner fence, a degradation being recorded, full-copy
    /// progress. Whether it applied its whole log is not taken over: reads check that again (in-flight writes of
    /// the old object are not tracked by the new one, but they are in the device's log).
    /// </summary>
    public void CarryOver(Mirror old)
    {
        // Linked first: a write of the old object that misses the device from here on marks this mirror too.
        old.Successor = this;
        Interlocked.Exchange(ref _verifiedMissedSeq, Interlocked.Read(ref old._verifiedMissedSeq));
        MarkMissed(old.LastSkippedSeq);
        FencedOwnerEpoch = old.FencedOwnerEpoch;
        PendingDegrade = old.PendingDegrade;
        FullCopyDone = old.FullCopyDone;
        FullCopyTotal = old.FullCopyTotal;
    }

    /// <summary>Set by a replace: the device whose mirror is detached once this one is in sync.</summary>
    public string? Replaces { get; set; }

    /// <summary>
    /// The mirror is in sync and has missed no write since it was declared so: the only kind of mirror that
    /// may serve a read or be the source of a copy. A write that misses it makes it not current at once,
    /// before its state change to degraded is recorded.
    /// </summary>
    public bool Current => State == MirrorState.InSync && LastSkippedSeq <= Interlocked.Read(ref _verifiedMissedSeq);

    /// <summary>
    /// Declared in sync after a check that covered every write it missed up to <paramref name="missedSeq"/>;
    /// a write it missed after that check keeps it from being current.
    /// </summary>
    public void Verified(long missedSeq) => Interlocked.Exchange(ref _verifiedMissedSeq, missedSeq);

    /// <summary>
    /// True once the mirror has been seen to apply its whole log since this controller took the volume
    /// (<paramref name="ownership"/> counts takeovers). Before that its applied state may lack writes a
    /// previous owner or epoch acknowledged at log level; afterwards in-flight tracking covers every write.
    /// </summary>
    public bool CaughtUpSince(long ownership) => Interlocked.Read(ref _caughtUpOwnership) == ownership;

    public void MarkCaughtUp(long ownership) => Interlocked.Exchange(ref _caughtUpOwnership, ownership);

    /// <summary>Blocks copied so far by a running full copy, and its total.</summary>
    public long FullCopyDone { get; set; }

    public long FullCopyTotal { get; set; }

    /// <summary>The mirror lost writes the log no longer holds and has not been fully copied since.</summary>
    public bool FullCopyPending { get; set; }

    public byte[] ObjectIdUtf8 { get; } = System.Text.Encoding.UTF8.GetBytes(objectId);

    private string? _pendingDegrade;

    /// <summary>
    /// Set when a write missed this mirror and its degradation is being recorded (PostgreSQL may be away):
    /// no copy goes to it meanwhile, and every write that skips it waits for the record like the first.
    /// </summary>
    public string? PendingDegrade
    {
        get => Volatile.Read(ref _pendingDegrade);
        set => Volatile.Write(ref _pendingDegrade, value);
    }

    /// <summary>The newest owner epoch whose fence this mirror's log has taken (see <see cref="Volume.OwnerEpoch"/>).</summary>
    public long FencedOwnerEpoch { get; set; }

    /// <summary>The fence being sent to this mirror's log, if any: one at a time.</summary>
    public Task? FenceInFlight { get; set; }

    /// <summary>Copies go to every mirror but a degraded one (or one being recorded as degraded).</summary>
    public bool ReceivesWrites => State != MirrorState.Degraded && PendingDegrade is null;
}

/// <summary>A block range held for a resync: writes to it wait until <see cref="Released"/> completes.</summary>
internal sealed class RangeFence(long firstBlock, long blocks)
{
    public long FirstBlock { get; } = firstBlock;

    public long End { get; } = firstBlock + blocks;

    public TaskCompletionSource Released { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool Overlaps(long first, long blocks) => first < End && FirstBlock < first + blocks;
}
