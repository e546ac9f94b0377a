using System.Text;
using Confluent.Kafka;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Controller.Fanout;

namespace TaggedMirror.Controller.Tests.Fanout;

/// <summary>The principal a write carries to its devices (header <c>tm-who</c>): always something a device records.</summary>
public sealed class WriteOriginTests
{
    [Theory]
    [InlineData("abc123def456", "key:abc123def456")]
    [InlineData("", "key:")]
    [InlineData("a\nb\0c\u007f", "key:a?b?c?")]
    [InlineData("émoji😀", "key:?moji??")]
    public void a_principal_is_printable_ascii_with_everything_else_replaced(string keyId, string expected) =>
        Assert.Equal(expected, Encoding.ASCII.GetString(WriteOrigin.Key(keyId).Principal!));

    [Fact]
    public void a_principal_is_cut_to_the_longest_a_device_records()
    {
        var who = WriteOrigin.Intake(new string('p', 500), "p/1").Principal!;
        Assert.Equal(HeaderNames.MaxPrincipalBytes, who.Length);
        Assert.StartsWith("key:ppp", Encoding.ASCII.GetString(who), StringComparison.Ordinal);
    }

    [Fact]
    public void every_string_becomes_bytes_a_device_accepts()
    {
        var rng = new Random(12);
        for (var i = 0; i < 2000; i++)
        {
            var text = new string([.. Enumerable.Range(0, rng.Next(0, 300)).Select(_ => (char)rng.Next(0, 0x3000))]);
            var bytes = WriteOrigin.Nbd(text).Principal!;
            Assert.True(bytes.Length <= HeaderNames.MaxPrincipalBytes && bytes.All(b => b is >= 32 and <= 126), text);
        }
    }

    [Fact]
    public void the_principal_and_request_travel_as_headers_only_when_there_are_some()
    {
        var fields = new TransactionHeader(TransactionKind.Write, new Tag(1, 1, 1), 0, 1, 512, 8);
        var with = DeviceLog.Transaction([1], fields, "v.d0"u8.ToArray(), [], new byte[512], origin: WriteOrigin.Intake("k1", "prod/7"));
        Assert.Equal("key:k1", Encoding.ASCII.GetString(with.Headers.GetLastBytes(HeaderNames.Principal)));
        Assert.Equal("prod/7", Encoding.ASCII.GetString(with.Headers.GetLastBytes(HeaderNames.RequestId)));
        var without = DeviceLog.Transaction([1], fields, "v.d0"u8.ToArray(), [], new byte[512]);
        Assert.False(without.Headers.TryGetLastBytes(HeaderNames.Principal, out _));
        Assert.False(without.Headers.TryGetLastBytes(HeaderNames.RequestId, out _));
    }
}
