using System.Text;
using FsCheck.Xunit;
using TaggedMirror.Nbd.Protocol;

namespace TaggedMirror.Nbd.Tests;

/// <summary>The codecs against the spec's bytes (NetworkBlockDevice/nbd doc/proto.md) and what real clients send.</summary>
public sealed class NbdWireTests
{
    [Fact]
    public void the_greeting_is_nbdmagic_ihaveopt_and_fixed_newstyle_with_no_zeroes()
    {
        var greeting = new byte[NbdWire.GreetingSize];
        NbdWire.WriteGreeting(greeting);
        Assert.Equal("NBDMAGICIHAVEOPT", Encoding.ASCII.GetString(greeting, 0, 16));
        Assert.Equal(new byte[] { 0x00, 0x03 }, greeting[16..]);
    }

    [Fact]
    public void a_go_for_an_export_with_a_block_size_request_parses_as_libnbd_sends_it()
    {
        // libnbd's nbd_connect_uri("nbd://127.0.0.1:10809/vol"): NBD_OPT_GO, name "vol", one request, NBD_INFO_BLOCK_SIZE.
        byte[] option =
        [
            0x49, 0x48, 0x41, 0x56, 0x45, 0x4F, 0x50, 0x54, 0, 0, 0, 7, 0, 0, 0, 0x0B,
            0, 0, 0, 3, (byte)'v', (byte)'o', (byte)'l', 0, 1, 0, 3,
        ];
        Assert.True(NbdWire.TryReadOptionHeader(option, out var kind, out var length));
        Assert.Equal((NbdOption.Go, 11u), (kind, length));
        Assert.True(NbdExportQuery.TryParse(option.AsSpan(NbdWire.OptionHeaderSize), out var query, out var error), error);
        Assert.Equal("vol", query.Name);
        Assert.Equal([NbdInfoType.BlockSize], query.Requested);
    }

    [Fact]
    public void the_replies_to_a_go_are_laid_out_as_the_spec_says()
    {
        const NbdTransmissionFlags flags = NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua;
        var export = NbdWire.OptionReply(NbdOption.Go, NbdReplyType.Info, NbdWire.InfoExport(4096 * 256, flags));
        Assert.Equal(Convert.FromHexString("0003E889045565A9" + "00000007" + "00000003" + "0000000C" + "0000" + "0000000000100000" + "000D"), export);
        var blockSize = NbdWire.OptionReply(NbdOption.Go, NbdReplyType.Info, NbdWire.InfoBlockSize(4096, 4096, 512 * 1024));
        Assert.Equal(Convert.FromHexString("0003E889045565A9" + "00000007" + "00000003" + "0000000E" + "0003" + "00001000" + "00001000" + "00080000"), blockSize);
        var ack = NbdWire.OptionReply(NbdOption.Go, NbdReplyType.Ack, []);
        Assert.Equal(Convert.FromHexString("0003E889045565A9" + "00000007" + "00000001" + "00000000"), ack);
    }

    [Theory]
    [InlineData("", "too short")]
    [InlineData("00000009" + "766F6C" + "0000", "does not fit")]
    [InlineData("00000003" + "766F6C" + "0002" + "0003", "2 information requests need 4 bytes")]
    [InlineData("00000003" + "766F6C" + "0000" + "00", "0 information requests need 0 bytes")]
    [InlineData("00000002" + "C328" + "0000", "not UTF-8")]
    public void a_malformed_export_query_is_refused_with_a_reason(string hex, string reason)
    {
        Assert.False(NbdExportQuery.TryParse(Convert.FromHexString(hex), out _, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Property(MaxTest = 300)]
    public bool a_request_reads_back_as_written(ushort flags, ushort command, ulong cookie, ulong offset, uint length)
    {
        var request = new NbdRequest((NbdCommandFlags)flags, (NbdCommand)command, cookie, offset, length);
        var bytes = new byte[NbdRequest.Size];
        request.WriteTo(bytes);
        return NbdRequest.TryRead(bytes, out var read) && read == request;
    }

    [Fact]
    public void a_request_without_the_request_magic_is_not_a_request()
    {
        var bytes = new byte[NbdRequest.Size];
        new NbdRequest(NbdCommandFlags.None, NbdCommand.Read, 1, 0, 4096).WriteTo(bytes);
        bytes[0] ^= 0xFF;
        Assert.False(NbdRequest.TryRead(bytes, out _));
        Assert.False(NbdRequest.TryRead(bytes.AsSpan(0, NbdRequest.Size - 1), out _));
    }

    [Theory]
    [InlineData(0UL, 0U, 0UL, true)]
    [InlineData(0UL, 4096U, 4096UL, true)]
    [InlineData(4096UL, 0U, 4096UL, true)]
    [InlineData(4096UL, 1U, 4096UL, false)]
    [InlineData(ulong.MaxValue, 1U, 4096UL, false)]
    [InlineData(ulong.MaxValue - 10, 4096U, ulong.MaxValue, false)]
    [InlineData(ulong.MaxValue - 4096, 4096U, ulong.MaxValue, true)]
    public void a_range_is_within_the_export_without_overflowing(ulong offset, uint length, ulong size, bool within) =>
        Assert.Equal(within, new NbdRequest(NbdCommandFlags.None, NbdCommand.Read, 0, offset, length).Within(size));

    [Fact]
    public void an_error_chunk_carries_the_error_and_a_message_cut_to_the_limit_at_a_character_boundary()
    {
        var chunk = NbdWire.ErrorChunk(NbdError.InvalidArgument, 0x1122334455667788, new string('é', 3000));
        Assert.Equal(Convert.FromHexString("668E33EF" + "0001" + "8001" + "1122334455667788"), chunk[..16]);
        var payload = chunk.AsSpan(NbdWire.ChunkHeaderSize);
        var messageLength = (payload[4] << 8) | payload[5];
        Assert.Equal(4096, messageLength);   // 2048 two-byte characters
        Assert.Equal(new string('é', 2048), Encoding.UTF8.GetString(payload[6..]));
        Assert.Equal(new byte[] { 0, 0, 0, 22 }, payload[..4].ToArray());
    }

    [Fact]
    public void a_simple_reply_is_magic_error_cookie()
    {
        var reply = new byte[NbdWire.SimpleReplySize];
        NbdWire.WriteSimpleReply(reply, NbdError.NoSpace, 7);
        Assert.Equal(Convert.FromHexString("67446698" + "0000001C" + "0000000000000007"), reply);
    }
}
