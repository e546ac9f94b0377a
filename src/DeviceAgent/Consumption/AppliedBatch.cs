using Confluent.Kafka;
using TaggedMirror.Contracts.Bus;
using TaggedMirror.DeviceAgent.BlockStore;

namespace TaggedMirror.DeviceAgent.Consumption;

/// <summary>What applying one batch produced, to be recorded in one PostgreSQL transaction.</summary>
internal sealed class AppliedBatch
{
    public List<object> Events { get; } = [];

    public List<AppliedEntry> Acknowledgements { get; } = [];

    /// <summary>Transactions refused (never to be applied here), with the reason and their tag when their header could be read.</summary>
    public List<(ConsumeResult<byte[]?, byte[]?> Message, string Reason, string? Tag)> Refused { get; } = [];

    /// <summary>Objects created or changed, as they are at the end of the batch: upserted after <see cref="DeletedObjects"/> are deleted.</summary>
    public Dictionary<string, StorageObject> ChangedObjects { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Objects a delete removed in this batch. Their rows are deleted before <see cref="ChangedObjects"/> are upserted,
    /// so an object written again after its delete in the same batch is recorded as the new object it is.
    /// </summary>
    public HashSet<string> DeletedObjects { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Of <see cref="DeletedObjects"/>, those whose block-writer rows go with them: all but those a rebuild's replay
    /// deleted again (the table kept through a rebuild already lacks the rows that delete removed the first time).
    /// </summary>
    public HashSet<string> WritersDeleted { get; } = new(StringComparer.Ordinal);

    /// <summary>Writes, appends and repairs applied (not replayed ones: their rows are kept), in order: rows of the block-writer table.</summary>
    public List<BlockWriteRow> BlockWrites { get; } = [];

    public Dictionary<int, long> NextOffsets { get; } = [];

    public Dictionary<(int Partition, int ControllerId), Contracts.TagTable.BarrierPassed> Barriers { get; } = [];

    /// <summary>Fences passed, the latest per object and partition.</summary>
    public Dictionary<(string ObjectId, int Partition), Contracts.TagTable.FencePassed> Fences { get; } = [];

    /// <summary>Owner epochs this batch raised, to be recorded with it.</summary>
    public Dictionary<(string ObjectId, int Partition), long> OwnerEpochs { get; } = [];

    public long DataBytes { get; set; }

    /// <summary>Writes, appends, repairs and deletes a rebuild replayed (applied, nothing recorded), their bytes, and its refusals.</summary>
    public long Replayed { get; set; }

    public long ReplayedBytes { get; set; }

    public long ReplayRefused { get; set; }

    public int Retired { get; set; }
}

/// <summary>One applied write as the block-writer table keeps it (see <c>DeviceSchema</c>, <c>block_writes</c>).</summary>
internal readonly record struct BlockWriteRow(
    string ObjectId, long FirstBlock, int BlockCount, Contracts.Tag Tag, Contracts.Transactions.TransactionKind Kind, long OwnerEpoch, string? Principal, int Partition, long Offset);
