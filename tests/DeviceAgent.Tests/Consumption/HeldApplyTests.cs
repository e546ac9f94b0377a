using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Bus;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.DeviceAgent.BlockStore;
using TaggedMirror.DeviceAgent.Consumption;
using TaggedMirror.DeviceAgent.TagTable;

namespace TaggedMirror.DeviceAgent.Tests.Consumption;

/// <summary>
/// A rebuild's replayed batches are applied as they come into one batch held open, and recorded together
/// (<c>DeviceConsumer</c>, docs/design.md "The replay's record"): applying a log in pieces into one batch must give
/// what applying it at once gives (files, events, offsets, owner epochs, objects, acknowledgements), wherever the pieces
/// are cut, with no barrier or fence pass recorded twice.
/// </summary>
public sealed class HeldApplyTests
{
    private const int BlockSize = 4096;

    [Theory]
    [InlineData(new[] { 13 })]
    [InlineData(new[] { 1, 12 })]
    [InlineData(new[] { 4, 4, 5 })]
    [InlineData(new[] { 1, 1, 1, 1, 1, 1, 1, 1, 5 })]
    [InlineData(new[] { 7, 6 })]
    [InlineData(new[] { 8, 5 })]
    public void a_log_applied_in_pieces_into_one_batch_gives_what_it_gives_applied_at_once(int[] pieces)
    {
        // Offsets 0..7 are replayed (a rebuild's), 8.. are new; fences and barriers on both sides of the end.
        ConsumeResult<byte[]?, byte[]?>[] log =
        [
            Message(0, TransactionKind.Fence, 1, "va.d9", 0, 0, ownerEpoch: 2),
            Message(1, TransactionKind.Write, 2, "va.d9", 0, 2, ownerEpoch: 2),
            Message(2, TransactionKind.Barrier, 3, "", 0, 0, ownerEpoch: 0),
            Message(3, TransactionKind.Write, 4, "vb.d9", 3, 1, ownerEpoch: 1),
            Message(4, TransactionKind.Delete, 5, "vb.d9", 0, 0, ownerEpoch: 1),
            Message(5, TransactionKind.Write, 6, "vb.d9", 1, 2, ownerEpoch: 1),
            Message(6, TransactionKind.Write, 7, "va.d9", 1, 3, ownerEpoch: 1), // an older owner's: refused
            Message(7, TransactionKind.Zero, 8, "va.d9", 0, 1, ownerEpoch: 2),
            Message(8, TransactionKind.Fence, 9, "va.d9", 0, 0, ownerEpoch: 3),
            Message(9, TransactionKind.Write, 10, "va.d9", 2, 2, ownerEpoch: 3),
            Message(10, TransactionKind.Barrier, 11, "", 0, 0, ownerEpoch: 0),
            Message(11, TransactionKind.Fence, 12, "vb.d9", 0, 0, ownerEpoch: 4),
            Message(12, TransactionKind.Write, 13, "vb.d9", 0, 1, ownerEpoch: 4),
        ];
        Assert.Equal(log.Length, pieces.Sum());
        // As the consumer holds them: every piece but the last replayed only (the first message past the replay's end
        // makes the held batches due).
        Assert.True(pieces[..^1].Sum() <= 8);

        var (once, onceFiles) = Run([log]);
        var chunks = new List<ConsumeResult<byte[]?, byte[]?>[]>();
        var at = 0;
        foreach (var n in pieces)
        {
            chunks.Add(log[at..(at + n)]);
            at += n;
        }
        var (held, heldFiles) = Run(chunks);

        Assert.Equal(onceFiles, heldFiles);
        Assert.Equal(Describe(once.Batch), Describe(held.Batch));
        Assert.Equal(once.State.StreamVersion, held.State.StreamVersion);
        Assert.Equal(once.State.NextOffsets, held.State.NextOffsets);
        Assert.Equal(once.State.OwnerEpochs.OrderBy(kv => kv.Key), held.State.OwnerEpochs.OrderBy(kv => kv.Key));
        // Each pass recorded once: the replayed ones not at all, the new fences and the barrier once each.
        Assert.Equal(3, held.Batch.Events.Count(e => e is Contracts.TagTable.FencePassed or Contracts.TagTable.BarrierPassed));
        // Replayed: the four writes and zeroes and the delete, and the refused one; fences and barriers are passed, not counted.
        Assert.Equal((5, 1), (held.Batch.Replayed, held.Batch.ReplayRefused));
    }

    private static ((AppliedBatch Batch, DeviceState State), Dictionary<string, string>) Run(IEnumerable<ConsumeResult<byte[]?, byte[]?>[]> chunks)
    {
        var directory = Directory.CreateTempSubdirectory("tm-held-");
        try
        {
            var state = new DeviceState
            {
                Rebuild = new RebuildState("r1", new Dictionary<int, long> { [0] = 0 }, new Dictionary<int, long> { [0] = 8 }, DateTimeOffset.UtcNow) { Wiped = true },
            };
            AppliedBatch? batch = null;
            using (var files = new ObjectFiles(directory.FullName))
            {
                var applier = new TransactionApplier(files);
                foreach (var chunk in chunks) batch = applier.Apply(chunk, state, batch);
                files.FlushWritten();
            }
            var contents = Directory.GetFiles(directory.FullName).Order(StringComparer.Ordinal)
                .ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexString(File.ReadAllBytes(f)));
            return ((batch!, state), contents);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static List<string> Describe(AppliedBatch b) =>
    [
        .. b.Events.Select(e => e.GetType().Name + JsonSerializer.Serialize(e, e.GetType())),
        .. b.Acknowledgements.Select(a => "ack " + JsonSerializer.Serialize(a)),
        .. b.Refused.Select(r => $"refused {r.Message.Offset.Value}: {r.Reason}"),
        .. b.ChangedObjects.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"object {kv.Key} {kv.Value.Geometry}"),
        .. b.DeletedObjects.Order(StringComparer.Ordinal).Select(o => "deleted " + o),
        .. b.WritersDeleted.Order(StringComparer.Ordinal).Select(o => "writers deleted " + o),
        .. b.BlockWrites.Select(w => "row " + w),
        .. b.NextOffsets.OrderBy(kv => kv.Key).Select(kv => $"next {kv.Key}@{kv.Value}"),
        .. b.OwnerEpochs.OrderBy(kv => kv.Key).Select(kv => $"epoch {kv.Key} {kv.Value}"),
        $"data {b.DataBytes} replayed {b.Replayed} bytes {b.ReplayedBytes} refused {b.ReplayRefused} retired {b.Retired}",
    ];

    private static ConsumeResult<byte[]?, byte[]?> Message(long offset, TransactionKind kind, long seq, string objectId, long first, int count, long ownerEpoch)
    {
        var objectBytes = Encoding.UTF8.GetBytes(objectId);
        var data = kind is TransactionKind.Write ? new byte[count * BlockSize] : [];
        data.AsSpan().Fill((byte)seq);
        var header = new byte[TransactionHeader.Size];
        TransactionCodec.WriteHeader(header, new TransactionHeader(kind, new Tag(1, 1, seq), first, count, BlockSize, 16, OwnerEpoch: ownerEpoch), objectBytes, null, data);
        return new ConsumeResult<byte[]?, byte[]?>
        {
            TopicPartitionOffset = new TopicPartitionOffset("tm.device.d9", 0, offset),
            Message = new Message<byte[]?, byte[]?>
            {
                Key = objectBytes,
                Value = data,
                Headers = new Headers { { HeaderNames.Header, header }, { HeaderNames.Object, objectBytes } },
            },
        };
    }
}
