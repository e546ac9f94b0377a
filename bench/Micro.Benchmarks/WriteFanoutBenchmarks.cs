using System.Collections.Concurrent;
using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Tagging;
using TaggedMirror.Controller.Volumes;

namespace TaggedMirror.Micro.Benchmarks;

/// <summary>
/// The in-memory part of <c>Fanout/WritePipeline.Enqueue</c> for one write, with the product's own types: under the
/// volume's write lock, the fence check, the tag (<see cref="TagGenerator.Next"/>), the <see cref="InflightWrite"/>
/// and its entries in the in-flight collections, the header fields, and for each mirror the waiting tokens taken
/// from its <see cref="DeviceChannel"/>, the copy marked sent, the Kafka message built as
/// <c>DeviceLog.Transaction</c> (the builder <c>SendAsync</c> uses: tokens, header and CRC32C, headers, message) and the channel's
/// flow-control count.
/// <para>
/// Left out: everything from <c>IProducer.ProduceAsync</c> on (librdkafka's queue, the network, the delivery and its
/// task), because WritePipeline needs a Kafka producer per device and this measures no I/O; the produce span (no
/// listener, so <c>StartActivity</c> returns null and nothing is injected, as when nobody traces); flow control's wait,
/// the lease check and the fault hooks around Enqueue. So that every invocation starts from the same state, the
/// write is then removed from the in-flight collections and one token per mirror is put back, as
/// <c>WritePipeline.Settle</c> does once every mirror applied it; the rest of settlement (acknowledgements, the
/// tasks completed) is not measured.
/// </para>
/// The copies share the caller's data array (only the CRC reads it), so <see cref="Bytes"/> changes the CRC's cost
/// alone; <see cref="Mirrors"/> multiplies the per-copy work.
/// </summary>
[MemoryDiagnoser]
public class WriteFanoutBenchmarks
{
    private const int BlockSize = 4096;
    private const long VolumeBlocks = 262_144; // 1 GiB of 4 KiB blocks

    private readonly ConcurrentDictionary<long, InflightWrite> _inflight = new();
    private readonly SortedSet<long> _undelivered = [];
    private readonly Lock _deliveryLock = new();
    private TagGenerator _tags = new(1, 1);
    private Volume _volume = new("bench", BlockSize, VolumeBlocks, 1, []);
    private DeviceChannel[] _channels = [];
    private byte[] _data = [];
    private long _nextToken;
    private long[]?[] _tokensTaken = [];

    /// <summary>Bytes of data the write carries.</summary>
    [Params(4096, 65536)]
    public int Bytes { get; set; }

    /// <summary>Mirrors of the volume, each sent its own copy.</summary>
    [Params(2, 3)]
    public int Mirrors { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Bytes];
        new Random(11).NextBytes(_data);
        _tags = new TagGenerator(controllerId: 1, epoch: 7);
        var mirrors = new Mirror[Mirrors];
        _channels = new DeviceChannel[Mirrors];
        for (var i = 0; i < Mirrors; i++)
        {
            var device = $"d{i}";
            mirrors[i] = new Mirror(i, device, Names.ObjectId("bench", device));
            // The producer is never touched here (see the class comment): nothing is sent.
            _channels[i] = new DeviceChannel(device, maxLagBytes: 256L << 20, repairBytesInFlight: 64L << 20, producer: null!);
            _channels[i].Tokens.Enqueue(++_nextToken);
        }
        _volume = new Volume("bench", BlockSize, VolumeBlocks, minMirrors: 1, mirrors) { OwnerEpoch = 3, Owned = true };
    }

    [Benchmark]
    public Message<byte[]?, byte[]?>[] Enqueue()
    {
        var v = _volume;
        var blocks = _data.Length / BlockSize;
        var firstBlock = _tags.Issued * blocks % (VolumeBlocks - blocks);
        var targets = (1 << v.Mirrors.Length) - 1;
        // WriteCoreAsync's per-write array of sends; here what each copy would have handed to ProduceAsync.
        var messages = new Message<byte[]?, byte[]?>[v.Mirrors.Length];
        var tokensTaken = new long[]?[v.Mirrors.Length];
        Span<long> tokenBuffer = stackalloc long[TransactionCodec.MaxTokensPerTransaction];
        InflightWrite write;
        lock (v.WriteLock)
        {
            if (v.Fences.Find(f => f.Overlaps(firstBlock, blocks)) is not null)
                throw new InvalidOperationException("no fence is set up here");
            v.ThrowIfRetired();
            var tag = _tags.Next();
            write = new InflightWrite(tag, v, firstBlock, blocks, _data.Length, targets);
            _inflight[tag.Seq] = write;
            v.Inflight[tag.Seq] = write;
            lock (_deliveryLock) _undelivered.Add(tag.Seq);
            var fields = new TransactionHeader(TransactionKind.Write, tag, firstBlock, blocks, v.BlockSize, v.Blocks, OwnerEpoch: v.OwnerEpoch);
            foreach (var m in v.Mirrors)
            {
                if ((targets & (1 << m.Index)) == 0 || !m.ReceivesWrites) continue;
                var channel = _channels[m.Index];
                var n = channel.Tokens.Take(tokenBuffer);
                write.MarkSent(m.Index);
                messages[m.Index] = DeviceLog.Transaction(m.ObjectIdUtf8, fields, m.ObjectIdUtf8, tokenBuffer[..n], _data);
                tokensTaken[m.Index] = n == 0 ? null : tokenBuffer[..n].ToArray();
                channel.OnSent(_data.Length);
            }
        }

        // Back to the starting state (see the class comment).
        lock (_deliveryLock) _undelivered.Remove(write.Tag.Seq);
        _inflight.TryRemove(write.Tag.Seq, out _);
        v.Inflight.TryRemove(write.Tag.Seq, out _);
        foreach (var channel in _channels)
            channel.Tokens.Enqueue(++_nextToken);
        _tokensTaken = tokensTaken; // kept, as WritePipeline keeps them until delivery
        return messages;
    }
}
