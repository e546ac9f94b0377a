using System.Text.Json;
using TaggedMirror.Nbd.Protocol;
using TaggedMirror.Nbd.Tests.Support;

namespace TaggedMirror.Nbd.Tests;

/// <summary>
/// <c>NBD_CMD_BLOCK_STATUS</c> (<c>base:allocation</c>): what the export says reaches the client as the spec wants it —
/// consecutive descriptors from the offset, none past the request, one under <c>REQ_ONE</c>, an export's broken answer an
/// error and never a reply — and real clients (nbdinfo, qemu-img, nbdcopy) read it as the holes and data there are.
/// </summary>
public sealed class BlockStatusTests
{
    private const int Size = 1024 * 1024;
    private const uint HoleZero = (uint)(NbdAllocation.Hole | NbdAllocation.Zero);

    [Fact]
    public async Task the_exports_extents_are_sent_in_order_cut_at_the_request_and_one_under_req_one()
    {
        var disk = new MemoryExport("disk", Size, blockSize: 4096);
        await using var server = new TestServer(null, disk);
        await using var c = await RawClient.OpenAsync(server.Port, "disk", allocation: true);
        // Data in [8k, 16k) and [64k, 68k); zeros elsewhere.
        await c.SendRequestAsync(NbdCommand.Write, 1, 8192, 8192, Enumerable.Repeat((byte)1, 8192).ToArray());
        await c.SendRequestAsync(NbdCommand.Write, 2, 65536, 4096, Enumerable.Repeat((byte)2, 4096).ToArray());
        for (var i = 0; i < 2; i++) Assert.Equal(NbdError.None, (await c.ReadReplyAsync()).Error);

        Assert.Equal([(8192u, HoleZero), (8192u, 0u), (49152u, HoleZero), (4096u, 0u), (4096u, HoleZero)], await c.BlockStatusAsync(3, 0, 73728));
        // Cut at the request: the hole that goes on past it is reported up to its end only.
        Assert.Equal([(4096u, HoleZero)], await c.BlockStatusAsync(4, 0, 4096));
        Assert.Equal([(4096u, 0u), (12288u, HoleZero)], await c.BlockStatusAsync(5, 12288, 16384));
        // REQ_ONE: the first extent alone, never longer than asked.
        Assert.Equal([(8192u, HoleZero)], await c.BlockStatusAsync(6, 0, 73728, NbdCommandFlags.RequestOne));
        Assert.Equal([(4096u, 0u)], await c.BlockStatusAsync(7, 8192, 4096, NbdCommandFlags.RequestOne));
        // Past the end or misaligned: refused as any request is.
        await c.SendRequestAsync(NbdCommand.BlockStatus, 8, Size - 4096, 8192);
        Assert.Equal(NbdError.InvalidArgument, (await c.ReadReplyAsync()).Error);
        await c.SendRequestAsync(NbdCommand.BlockStatus, 9, 512, 4096);
        Assert.Equal(NbdError.InvalidArgument, (await c.ReadReplyAsync()).Error);
    }

    [Theory]
    [InlineData("none")]
    [InlineData("empty")]
    [InlineData("misaligned")]
    public async Task an_export_that_answers_no_valid_extent_gets_an_error_sent_and_the_connection_goes_on(string broken)
    {
        var disk = new MemoryExport("disk", Size, blockSize: 4096)
        {
            StatusOverride = (_, _) => broken switch
            {
                "none" => [],
                "empty" => [new NbdExtent(0, NbdAllocation.Data)],
                _ => [new NbdExtent(4096, NbdAllocation.Data), new NbdExtent(1000, NbdAllocation.Hole | NbdAllocation.Zero)],
            },
        };
        await using var server = new TestServer(null, disk);
        await using var c = await RawClient.OpenAsync(server.Port, "disk", allocation: true);
        await c.SendRequestAsync(NbdCommand.BlockStatus, 1, 0, 65536);
        var reply = await c.ReadReplyAsync();
        Assert.Equal((1UL, NbdError.Io, NbdChunkType.Error), (reply.Cookie, reply.Error, reply.Chunk));
        Assert.Contains("extent", reply.Message);
        await c.SendRequestAsync(NbdCommand.Read, 2, 0, 4096);
        Assert.Equal(new byte[4096], (await c.ReadReplyAsync()).Data);
    }

    [Fact]
    public async Task nbdinfo_and_qemu_img_map_the_holes_and_the_data_and_nbdcopy_copies_the_same_bytes()
    {
        var disk = new MemoryExport("disk", 8 * Size, blockSize: 4096);
        await using var server = new TestServer(null, disk);
        await Tool.CheckAsync("qemu-io", "-f", "raw", "-c", "write -P 0x11 64k 128k", "-c", "write -P 0x22 3M 4k", "-c", "write -P 0x33 8188k 4k",
            "-c", "write -z 96k 32k", server.Uri("disk"));
        // Data: [64k, 96k), [128k, 192k), [3M, 3M+4k), [8188k, 8M); the rest reads as zeros.
        long[][] data = [[64 << 10, 32 << 10], [128 << 10, 64 << 10], [3 << 20, 4 << 10], [8188 << 10, 4 << 10]];

        Assert.Equal(NbdMap.Expected(data, 8 * Size), await NbdMap.OfAsync(server.Uri("disk")));

        var qemu = JsonDocument.Parse(await Tool.CheckAsync("qemu-img", "map", "--output=json", "-f", "raw", server.Uri("disk"))).RootElement;
        Assert.Equal(data.Select(d => (d[0], d[1])), qemu.EnumerateArray().Where(e => e.GetProperty("data").GetBoolean()).Select(e => (e.GetProperty("start").GetInt64(), e.GetProperty("length").GetInt64())));

        var copy = Path.Combine(Path.GetTempPath(), $"tm-nbd-copy-{Guid.NewGuid():N}.img");
        try
        {
            await Tool.CheckAsync("nbdcopy", server.Uri("disk"), copy);
            Assert.Equal(disk.Snapshot(), await File.ReadAllBytesAsync(copy));
        }
        finally
        {
            File.Delete(copy);
        }
    }
}
