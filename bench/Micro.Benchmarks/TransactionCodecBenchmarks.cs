using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Controller.Fanout;

namespace TaggedMirror.Micro.Benchmarks;

/// <summary>
/// One write transaction through the codec, both ends. <see cref="Encode"/> is the controller's own
/// <c>DeviceLog.Transaction</c>, what <c>SendAsync</c> hands librdkafka: encode the tokens, fill the header and its
/// CRC32C (over header, object id, tokens and data), put them in the Kafka headers.
/// <see cref="Decode"/> is what the agent's <c>Consumption/TransactionApplier.ApplyOne</c> does before it touches the
/// block store: take the three headers, check the CRC and the shape rules, read the tokens.
/// The transaction carries one token, as in steady state (each write settled returns one token per device, which
/// rides on the next transaction to it). The CRC covers the data, so the cost grows with <see cref="Bytes"/>.
/// </summary>
[MemoryDiagnoser]
public class TransactionCodecBenchmarks
{
    private const int BlockSize = 4096;

    private readonly byte[] _objectId = "bench.d0"u8.ToArray();
    private readonly byte[] _key = "bench.d0"u8.ToArray();
    private readonly long[] _tokens = [42];
    private byte[] _data = [];
    private TransactionHeader _fields;
    private Headers _encoded = [];

    /// <summary>Bytes of data the write carries.</summary>
    [Params(4096, 65536)]
    public int Bytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Bytes];
        new Random(11).NextBytes(_data);
        var blocks = Bytes / BlockSize;
        _fields = new TransactionHeader(
            TransactionKind.Write, new Contracts.Tag(1, 7, 1_000_000), FirstBlock: 8192, blocks, BlockSize, ObjectBlocks: 262_144, OwnerEpoch: 3);
        _encoded = Encode();
        Decode(); // fails loudly here rather than measuring a refusal
    }

    [Benchmark]
    public Headers Encode() => DeviceLog.Transaction(_key, _fields, _objectId, _tokens, _data).Headers;

    [Benchmark]
    public long Decode()
    {
        var header = Get(_encoded, HeaderNames.Header);
        var objectBytes = Get(_encoded, HeaderNames.Object);
        var tokenBytes = Get(_encoded, HeaderNames.Tokens);
        if (!TransactionCodec.TryRead(header, objectBytes, tokenBytes, _data, out var h, out var error))
            throw new InvalidOperationException("the encoded transaction does not read back: " + error);
        var sum = h.FirstBlock;
        for (var i = 0; i < tokenBytes.Length / 8; i++)
            sum += TransactionCodec.ReadToken(tokenBytes, i);
        return sum;
    }

    // As TransactionApplier reads a header: the last value under the key, none when absent.
    private static ReadOnlySpan<byte> Get(Headers headers, string key) =>
        headers.TryGetLastBytes(key, out var bytes) ? bytes : default;
}
