namespace TaggedMirror.Contracts.Api;

/// <summary>What the controller's <c>GET /controller</c> answers: who it is and how busy.</summary>
/// <param name="ControllerId">The controller's configured id.</param>
/// <param name="Epoch">This run's epoch (M2): a new one at every start.</param>
/// <param name="TagsIssued">Tags issued in this epoch.</param>
/// <param name="Inflight">Writes not yet applied on every mirror.</param>
public sealed record ControllerInfo(int ControllerId, int Epoch, long TagsIssued, int Inflight);

/// <summary>What <c>GET /diag/process</c> answers on the controller and the agents (read by the benchmarks).</summary>
/// <param name="Pid">The process id.</param>
/// <param name="PeakWorkingSetBytes">Peak resident memory.</param>
/// <param name="WorkingSetBytes">Resident memory now.</param>
/// <param name="TotalAllocatedBytes">Bytes allocated on the managed heap since start.</param>
/// <param name="CpuSeconds">CPU time (user and system) the process has used since start.</param>
/// <param name="Gen0Collections">Garbage collections of generation 0 since start.</param>
/// <param name="Gen1Collections">Of generation 1.</param>
/// <param name="Gen2Collections">Of generation 2.</param>
public sealed record ProcessDiagnostics(int Pid, long PeakWorkingSetBytes, long WorkingSetBytes, long TotalAllocatedBytes,
    double CpuSeconds = 0, int Gen0Collections = 0, int Gen1Collections = 0, int Gen2Collections = 0);

/// <summary>What a device agent's <c>GET /status</c> answers.</summary>
/// <param name="DeviceId">The device.</param>
/// <param name="Running">True once the apply loop runs.</param>
/// <param name="State"><c>starting</c>, <c>running</c>, or <c>faulted</c> (not applying, retrying; nothing skipped).</param>
/// <param name="Fault">Why the device cannot apply what it is sent; null while it can.</param>
/// <param name="FaultSince">When the fault began.</param>
/// <param name="LastError">The apply loop's last error, if any.</param>
/// <param name="TruncationDetected">True once the device found its log truncated under it.</param>
/// <param name="LiveEntries">Entries in its live tag table.</param>
/// <param name="AppliedTransactions">Transactions applied since start.</param>
/// <param name="AppliedBytes">Their data bytes.</param>
/// <param name="DeadLettered">Transactions refused and dead-lettered since start.</param>
/// <param name="NextOffsets">The next offset to apply, per partition.</param>
/// <param name="Objects">The storage objects it holds.</param>
/// <param name="Rebuild">The device's newest rebuild from its log (<c>tm rebuild</c>), running or done; null if none.</param>
public sealed record DeviceStatusAnswer(
    string DeviceId,
    bool Running,
    string State,
    string? Fault,
    DateTimeOffset? FaultSince,
    string? LastError,
    bool TruncationDetected,
    long LiveEntries,
    long AppliedTransactions,
    long AppliedBytes,
    long DeadLettered,
    IReadOnlyDictionary<string, long> NextOffsets,
    DeviceObjectStatus[] Objects,
    DeviceRebuildProgress? Rebuild = null);

/// <summary>
/// A device's rebuild from its log as the device records it: its objects were wiped and the log is replayed from
/// <paramref name="LogStart"/> up to <paramref name="ReplayUntil"/> (the device's next offsets when it began) without
/// recording anything in the tag table; from there on the device applies its log as always.
/// </summary>
/// <param name="Id">The rebuild's id (given by the controller).</param>
/// <param name="Phase"><c>wiping</c>, <c>replaying</c> or <c>done</c>.</param>
/// <param name="LogStart">Per partition: the oldest offset the log held when the rebuild began.</param>
/// <param name="ReplayUntil">Per partition: where the replay ends.</param>
/// <param name="Replayed">Per partition: the next offset the replay needs (equal to <paramref name="ReplayUntil"/> when done).</param>
/// <param name="LogTruncated">The log no longer held its start (retention): what fell off comes from a full copy.</param>
/// <param name="Transactions">Writes, appends and repairs replayed.</param>
/// <param name="Bytes">Their data bytes.</param>
/// <param name="Refused">Transactions the replay refused (as when they first came: each was refused then too).</param>
/// <param name="StartedAt">When the device began it.</param>
/// <param name="CompletedAt">When the replay reached <paramref name="ReplayUntil"/>.</param>
public sealed record DeviceRebuildProgress(
    string Id,
    string Phase,
    IReadOnlyDictionary<string, long> LogStart,
    IReadOnlyDictionary<string, long> ReplayUntil,
    IReadOnlyDictionary<string, long> Replayed,
    bool LogTruncated,
    long Transactions,
    long Bytes,
    long Refused,
    DateTimeOffset StartedAt,
    DateTimeOffset? CompletedAt);

/// <summary>One storage object in <see cref="DeviceStatusAnswer"/>.</summary>
/// <param name="Id">The object (<c>&lt;volume&gt;.&lt;device&gt;</c>).</param>
/// <param name="BlockSize">Bytes per block.</param>
/// <param name="ObjectBlocks">Blocks in its base range.</param>
/// <param name="ExtensionBlocks">Blocks appended past the base range.</param>
/// <param name="NeedsFullCopy">True while the device's log was truncated under it and no full copy covers that yet.</param>
public sealed record DeviceObjectStatus(string Id, int BlockSize, long ObjectBlocks, long ExtensionBlocks, bool NeedsFullCopy);

/// <summary>
/// A device's answer to <c>GET /objects/{id}/checksums</c>: per block from <paramref name="FirstBlock"/>, the
/// checksum (XxHash64) of the bytes it holds now and the one it recorded when it wrote them (0: none recorded, a
/// block never written or written before checksums existed). A block whose two differ changed behind the product.
/// </summary>
public sealed record BlockChecksums(int BlockSize, long FirstBlock, ulong[] Actual, ulong[] Recorded)
{
    /// <summary>Most blocks one request may ask about.</summary>
    public const int MaxBlocks = 4096;

    /// <summary>A block's checksum as devices record it: XxHash64 of its bytes, never 0 (0 is "none recorded").</summary>
    public static ulong Of(ReadOnlySpan<byte> block)
    {
        var h = System.IO.Hashing.XxHash64.HashToUInt64(block);
        return h == 0 ? 1 : h;
    }

    /// <summary>The checksum of a block of zeros (a block never written reads as zeros).</summary>
    public static ulong OfZeros(int blockSize) => Of(new byte[blockSize]);
}

/// <summary>
/// The body of <c>POST /objects/{id}/ranges</c> on a device: several byte ranges of one object read in one request
/// (a resync batch's ranges from its source). The answer is their bytes one after the other, in this order.
/// </summary>
public sealed record RangeRead(long[] Offsets, int[] Lengths)
{
    /// <summary>Most ranges one request may ask for.</summary>
    public const int MaxRanges = 4096;

    /// <summary>Most bytes one request may ask for, all ranges together (also the most one plain read may ask for).</summary>
    public const int MaxBytes = 16 * 1024 * 1024;

    /// <summary>Why the request cannot be answered for an object of <paramref name="blockSize"/>-byte blocks, or null.</summary>
    public string? Invalid(int blockSize)
    {
        if (Offsets is null || Lengths is null || Offsets.Length != Lengths.Length)
            return "offsets and lengths must be two lists of the same length";
        if (Offsets.Length is 0 or > MaxRanges) return $"between 1 and {MaxRanges} ranges may be read at once, not {Offsets.Length}";
        long total = 0;
        for (var i = 0; i < Offsets.Length; i++)
        {
            var (offset, length) = (Offsets[i], Lengths[i]);
            if (offset < 0 || length <= 0 || offset % blockSize != 0 || offset > long.MaxValue - length)
                return $"range {i}, [{offset}, +{length}), is not block-aligned, empty, negative or past the largest offset";
            total += length;
            if (total > MaxBytes) return $"the ranges add up to more than {MaxBytes} bytes";
        }
        return null;
    }
}
