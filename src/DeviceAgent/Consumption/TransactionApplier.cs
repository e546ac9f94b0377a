using System.Text;
using Confluent.Kafka;
using TaggedMirror.Contracts.Bus;
using TaggedMirror.Contracts.TagTable;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.DeviceAgent.BlockStore;
using TaggedMirror.DeviceAgent.TagTable;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.DeviceAgent.Consumption;

/// <summary>
/// Applies transactions to the block store and turns them into tag-table events (M3, M5). It changes
/// <see cref="DeviceState"/> as it goes; the caller commits the result or, on failure, reloads the state.
/// Replaying the same transactions from the same committed state writes the same bytes to the same
/// places and produces the same events: appends land by the committed extension length, not the file size.
/// </summary>
internal sealed class TransactionApplier(ObjectFiles files)
{
    public AppliedBatch Apply(IReadOnlyList<ConsumeResult<byte[]?, byte[]?>> messages, DeviceState state)
    {
        var batch = new AppliedBatch();
        var now = DateTimeOffset.UtcNow;
        foreach (var m in messages)
        {
            batch.NextOffsets[m.Partition.Value] = m.Offset.Value + 1;
            var reason = ApplyOne(m, state, batch, now);
            if (reason is not null)
                batch.Refused.Add((m, reason));
        }
        // Barriers are coalesced: only the latest per partition and controller matters.
        foreach (var b in batch.Barriers.Values)
            Append(state, batch, DeviceRepository.Barrier(b));
        foreach (var (p, o) in batch.NextOffsets)
            state.NextOffsets[p] = o;
        return batch;
    }

    private string? ApplyOne(ConsumeResult<byte[]?, byte[]?> m, DeviceState state, AppliedBatch batch, DateTimeOffset now)
    {
        var headers = m.Message.Headers;
        var header = Get(headers, HeaderNames.Header);
        var objectBytes = Get(headers, HeaderNames.Object);
        var tokenBytes = Get(headers, HeaderNames.Tokens);
        var data = m.Message.Value ?? [];
        if (!TransactionCodec.TryRead(header, objectBytes, tokenBytes, data, out var h, out var error))
            return error;

        // Tokens first: they retire entries of earlier writes whatever this transaction turns out to be.
        for (var i = 0; i < tokenBytes.Length / 8; i++)
        {
            var token = TransactionCodec.ReadToken(tokenBytes, i);
            if (state.Live.Remove(token, out var entry))
            {
                Append(state, batch, DeviceRepository.Retired(new TagRetired(entry.Tag, token, "token")));
                batch.Retired++;
            }
        }
        if (h.Kind == TransactionKind.Barrier)
        {
            batch.Barriers[(m.Partition.Value, h.Tag.ControllerId)] =
                new BarrierPassed(h.Tag.ControllerId, h.Tag.Epoch, h.Tag.Seq, m.Partition.Value, m.Offset.Value);
            return null;
        }

        var objectId = Encoding.UTF8.GetString(objectBytes);
        if (!Contracts.Names.IsValid(Contracts.Names.VolumeOfObject(objectId)))
            return $"object id '{objectId}' is not valid";
        if (!state.Objects.TryGetValue(objectId, out var obj))
        {
            obj = new StorageObject(objectId, h.BlockSize, h.ObjectBlocks, 0, needsFullCopy: false);
            state.Objects[objectId] = obj;
            batch.ChangedObjects[objectId] = obj;
        }
        if (obj.BlockSize != h.BlockSize || obj.ObjectBlocks != h.ObjectBlocks)
            return $"geometry mismatch for {objectId}: transaction says {h.ObjectBlocks} blocks of {h.BlockSize}, the object has {obj.ObjectBlocks} of {obj.BlockSize}";

        // The controller places every write, appends included: an append lands where the header says, so a
        // mirror that missed an earlier append still puts later ones where its peers did (the gap is resynced).
        var first = h.FirstBlock;
        var end = first + h.BlockCount;
        switch (h.Kind)
        {
            case TransactionKind.Write when end > obj.ObjectBlocks:
                return $"blocks [{first}, {end}) are outside {objectId}, which has {obj.ObjectBlocks} blocks";
            case TransactionKind.Append when first < obj.ObjectBlocks:
                return $"append at block {first} is inside {objectId}'s base range of {obj.ObjectBlocks} blocks";
            case TransactionKind.Append or TransactionKind.Repair when end - obj.ObjectBlocks > obj.ExtensionBlocks:
                // A repair may restore an append this mirror missed, so it may extend the object too.
                obj.ExtensionBlocks = end - obj.ObjectBlocks;
                batch.ChangedObjects[objectId] = obj;
                break;
        }

        files.Write(objectId, first * obj.BlockSize, data);
        batch.DataBytes += data.Length;
        var token2 = state.StreamVersion + 1;
        Append(state, batch, DeviceRepository.Recorded(new TagRecorded(
            h.Tag, h.Kind, objectId, first, h.BlockCount, h.Kind == TransactionKind.Append, m.Partition.Value, m.Offset.Value, token2,
            KafkaTracing.TraceParentOf(headers))));
        state.Live[token2] = new LiveEntry(h.Tag, objectId, first, h.BlockCount, now);
        batch.Acknowledgements.Add(new AppliedEntry(h.Tag.ToString(), objectId, first, h.BlockCount, token2));
        return null;
    }

    private static void Append(DeviceState state, AppliedBatch batch, EventStore.NewEvent e)
    {
        batch.Events.Add(e);
        state.StreamVersion++;
    }

    private static ReadOnlySpan<byte> Get(Headers? headers, string key) =>
        headers is not null && headers.TryGetLastBytes(key, out var bytes) ? bytes : default;
}
