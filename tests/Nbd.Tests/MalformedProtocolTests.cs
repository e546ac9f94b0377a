using TaggedMirror.Nbd.Protocol;
using TaggedMirror.Nbd.Tests.Support;

namespace TaggedMirror.Nbd.Tests;

/// <summary>
/// What no real client sends, over raw sockets: a request the server can refuse in frame is refused (EINVAL, or ENOSPC
/// for a write past the end) and the connection goes on; one whose framing cannot be trusted closes that connection
/// only. Either way nothing reaches the export, and other connections are served.
/// </summary>
public sealed class MalformedProtocolTests
{
    private const int Size = 1024 * 1024;

    private static async Task AssertStillServedAsync(TestServer server)
    {
        await using var c = await RawClient.OpenAsync(server.Port, "disk");
        var data = Enumerable.Range(0, 512).Select(i => (byte)i).ToArray();
        await c.SendRequestAsync(NbdCommand.Write, 1, 0, 512, data);
        Assert.Equal(NbdError.None, (await c.ReadReplyAsync()).Error);
        await c.SendRequestAsync(NbdCommand.Read, 2, 0, 512);
        Assert.Equal(data, (await c.ReadReplyAsync()).Data);
    }

    private static async Task<(TestServer Server, MemoryExport Disk)> StartAsync(bool _ = true)
    {
        var disk = new MemoryExport("disk", Size);
        await Task.CompletedTask;
        return (new TestServer(null, disk), disk);
    }

    public static TheoryData<string> Handshakes => new() { "bad option magic", "unknown client flags", "oversized option", "export name unknown", "vanishes mid-option", "not utf-8 export name" };

    [Theory]
    [MemberData(nameof(Handshakes))]
    public async Task a_broken_handshake_closes_that_connection_only(string how)
    {
        var (server, disk) = await StartAsync();
        await using (server)
        {
            var c = how == "unknown client flags" ? await RawClient.HandshakeAsync(server.Port, clientFlags: 0x7) : await RawClient.HandshakeAsync(server.Port);
            await using (c)
            {
                switch (how)
                {
                    case "bad option magic":
                        await c.SendAsync(new byte[16]);
                        break;
                    case "oversized option":
                        await c.SendOptionAsync((uint)NbdOption.Go, 10 * 1024 * 1024, []);
                        break;
                    case "export name unknown":
                        await c.SendOptionAsync(NbdOption.ExportName, "nope"u8.ToArray());
                        break;
                    case "not utf-8 export name":
                        await c.SendOptionAsync(NbdOption.ExportName, [0xff, 0xfe]);
                        break;
                    case "vanishes mid-option":
                        await c.SendOptionAsync((uint)NbdOption.Go, 100, new byte[10]);
                        c.Abort();
                        break;
                }
                if (how != "vanishes mid-option") Assert.True(await c.ClosedByServerAsync(), $"{how}: the connection stayed open");
            }
            Assert.Equal(0, disk.Writes);
            await AssertStillServedAsync(server);
        }
    }

    [Fact]
    public async Task refused_options_are_answered_in_frame_and_the_handshake_goes_on()
    {
        var (server, _) = await StartAsync();
        await using (server)
        {
            await using var c = await RawClient.HandshakeAsync(server.Port);
            // GO whose name length runs past the option: ERR_INVALID.
            var query = RawClient.ExportQuery("disk");
            query[3] = 200;
            await c.SendOptionAsync(NbdOption.Go, query);
            Assert.Equal(NbdReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Type);
            // Unknown export, and one served elsewhere.
            await c.SendOptionAsync(NbdOption.Info, RawClient.ExportQuery("nope"));
            var unknown = await c.ReadOptionReplyAsync();
            Assert.Equal(NbdReplyType.ErrUnknown, unknown.Type);
            Assert.Contains("nope", System.Text.Encoding.UTF8.GetString(unknown.Data), StringComparison.Ordinal);
            await c.SendOptionAsync(NbdOption.Go, RawClient.ExportQuery(MemoryExports.RefusedName));
            Assert.Equal(NbdReplyType.ErrPolicy, (await c.ReadOptionReplyAsync()).Type);
            // Options this server does not have, LIST with data, meta contexts before structured replies.
            await c.SendOptionAsync(NbdOption.StartTls, []);
            Assert.Equal(NbdReplyType.ErrUnsupported, (await c.ReadOptionReplyAsync()).Type);
            await c.SendOptionAsync(NbdOption.ExtendedHeaders, []);
            Assert.Equal(NbdReplyType.ErrUnsupported, (await c.ReadOptionReplyAsync()).Type);
            await c.SendOptionAsync(999, 3, [1, 2, 3]);
            Assert.Equal(NbdReplyType.ErrUnsupported, (await c.ReadOptionReplyAsync()).Type);
            await c.SendOptionAsync(NbdOption.List, [1]);
            Assert.Equal(NbdReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Type);
            await c.SendOptionAsync(NbdOption.SetMetaContext, RawClient.MetaQuery("disk", "base:allocation"));
            Assert.Equal(NbdReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Type);
            // A meta query whose count of queries the data cannot hold.
            await c.SendOptionAsync(NbdOption.StructuredReply, []);
            Assert.Equal(NbdReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
            var meta = RawClient.MetaQuery("disk");
            meta[^1] = 0xff;
            await c.SendOptionAsync(NbdOption.ListMetaContext, meta);
            Assert.Equal(NbdReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Type);
            // Still in the handshake: LIST answers, ABORT is acknowledged.
            await c.SendOptionAsync(NbdOption.List, []);
            var entry = await c.ReadOptionReplyAsync();
            Assert.Equal(NbdReplyType.Server, entry.Type);
            Assert.Equal(NbdReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
            await c.SendOptionAsync(NbdOption.Abort, []);
            Assert.Equal(NbdReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
            Assert.True(await c.ClosedByServerAsync());
        }
    }

    public static TheoryData<string> Framing => new() { "bad request magic", "write beyond the maximum", "read beyond the maximum", "unknown command", "offset overflows", "write cut off mid-payload", "header cut off" };

    [Theory]
    [MemberData(nameof(Framing))]
    public async Task a_request_whose_framing_cannot_be_trusted_closes_that_connection_and_writes_nothing(string how)
    {
        var (server, disk) = await StartAsync();
        await using (server)
        {
            await using (var c = await RawClient.OpenAsync(server.Port, "disk"))
            {
                switch (how)
                {
                    case "bad request magic":
                        await c.SendAsync(new byte[28]);
                        break;
                    case "write beyond the maximum":
                        await c.SendRequestAsync(NbdCommand.Write, 7, 0, 64 * 1024 * 1024, new byte[4096]);
                        await AssertRefusedAsync(c, 7, NbdError.InvalidArgument);
                        break;
                    case "read beyond the maximum":
                        await c.SendRequestAsync(NbdCommand.Read, 7, 0, 64 * 1024 * 1024);
                        await AssertRefusedAsync(c, 7, NbdError.InvalidArgument);
                        break;
                    case "unknown command":
                        await c.SendRequestAsync((NbdCommand)9, 7, 0, 512, new byte[512]);
                        await AssertRefusedAsync(c, 7, NbdError.InvalidArgument);
                        break;
                    case "offset overflows":
                        await c.SendRequestAsync(NbdCommand.Write, 7, ulong.MaxValue - 511, 1024, new byte[1024]);
                        await AssertRefusedAsync(c, 7, NbdError.InvalidArgument);
                        break;
                    case "write cut off mid-payload":
                        await c.SendRequestAsync(NbdCommand.Write, 7, 0, 4096, new byte[1000]);
                        c.Abort();
                        break;
                    case "header cut off":
                        await c.SendAsync(new byte[] { 0x25, 0x60, 0x95, 0x13, 0, 0, 0, 1 });
                        c.Abort();
                        break;
                }
                if (how is not ("write cut off mid-payload" or "header cut off")) Assert.True(await c.ClosedByServerAsync(), $"{how}: the connection stayed open");
            }
            Assert.Equal(0, disk.Writes);
            Assert.All(disk.Snapshot(), b => Assert.Equal(0, b));
            await AssertStillServedAsync(server);
        }
    }

    private static async Task AssertRefusedAsync(RawClient c, ulong cookie, NbdError error)
    {
        var reply = await c.ReadReplyAsync();
        Assert.Equal((cookie, error), (reply.Cookie, reply.Error));
        Assert.False(string.IsNullOrEmpty(reply.Message), "a structured refusal says why");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task requests_refused_in_frame_get_their_error_and_the_connection_goes_on(bool structured)
    {
        var (server, disk) = await StartAsync();
        await using (server)
        {
            await using var c = await RawClient.OpenAsync(server.Port, "disk", structured);
            var cases = new (NbdCommand Command, ulong Offset, uint Length, NbdCommandFlags Flags, NbdError Expected)[]
            {
                (NbdCommand.Write, 100, 512, NbdCommandFlags.None, NbdError.InvalidArgument),            // misaligned offset
                (NbdCommand.Write, 0, 100, NbdCommandFlags.None, NbdError.InvalidArgument),              // misaligned length
                (NbdCommand.Write, 0, 0, NbdCommandFlags.None, NbdError.InvalidArgument),                // empty
                (NbdCommand.Write, Size, 512, NbdCommandFlags.None, NbdError.NoSpace),                   // at the end
                (NbdCommand.Write, Size - 512, 1024, NbdCommandFlags.None, NbdError.NoSpace),            // across the end
                (NbdCommand.Write, 0, 512, (NbdCommandFlags)0x40, NbdError.InvalidArgument),             // unknown flag
                (NbdCommand.Write, 0, 512, NbdCommandFlags.FastZero, NbdError.InvalidArgument),          // not advertised
                (NbdCommand.WriteZeroes, Size, 512, NbdCommandFlags.None, NbdError.NoSpace),
                (NbdCommand.WriteZeroes, 0, 512, NbdCommandFlags.FastZero, NbdError.InvalidArgument),
                (NbdCommand.Trim, Size - 512, 1024, NbdCommandFlags.None, NbdError.InvalidArgument),
                (NbdCommand.Read, Size, 512, NbdCommandFlags.None, NbdError.InvalidArgument),
                (NbdCommand.Read, 512, 0, NbdCommandFlags.None, NbdError.InvalidArgument),
                (NbdCommand.Read, 0, 512, NbdCommandFlags.RequestOne, NbdError.InvalidArgument),
                (NbdCommand.Flush, 512, 0, NbdCommandFlags.None, NbdError.InvalidArgument),
                (NbdCommand.Cache, 0, 512, NbdCommandFlags.None, NbdError.InvalidArgument),
                (NbdCommand.BlockStatus, 0, 512, NbdCommandFlags.None, NbdError.InvalidArgument),        // no context chosen
            };
            ulong cookie = 100;
            foreach (var (command, offset, length, flags, expected) in cases)
            {
                cookie++;
                var payload = command == NbdCommand.Write ? new byte[length].Select(_ => (byte)0xee).ToArray() : null;
                await c.SendRequestAsync(command, cookie, offset, length, payload, flags);
                var reply = await c.ReadReplyAsync();
                Assert.True((cookie, expected) == (reply.Cookie, reply.Error), $"{command} at {offset}+{length} flags {flags}: got {reply.Error}");
            }
            Assert.Equal(0, disk.Writes);
            // The connection is in frame: a real write and read still work.
            await c.SendRequestAsync(NbdCommand.Write, 1, 512, 512, Enumerable.Repeat((byte)7, 512).ToArray(), NbdCommandFlags.Fua);
            Assert.Equal(NbdError.None, (await c.ReadReplyAsync()).Error);
            await c.SendRequestAsync(NbdCommand.Read, 2, 512, 512);
            Assert.Equal(Enumerable.Repeat((byte)7, 512).ToArray(), (await c.ReadReplyAsync(512)).Data);
        }
    }

    [Fact]
    public async Task many_requests_in_flight_are_each_answered_under_their_own_cookie_and_disc_answers_them_all_first()
    {
        var disk = new MemoryExport("disk", Size);
        await using var server = new TestServer(new Server.NbdServerOptions { MaxRequestsInFlight = 16 }, disk);
        await using var c = await RawClient.OpenAsync(server.Port, "disk", allocation: true);
        // 256 writes sent without waiting (more than the 16 the server takes at once: the rest wait in TCP), then DISC.
        for (ulong i = 0; i < 256; i++)
            await c.SendRequestAsync(NbdCommand.Write, 1000 + i, i * 4096, 4096, Enumerable.Repeat((byte)i, 4096).ToArray());
        await c.SendRequestAsync(NbdCommand.BlockStatus, 5, 0, 8192, flags: NbdCommandFlags.RequestOne);
        await c.SendRequestAsync(NbdCommand.Disconnect, 6, 0, 0);
        var cookies = new HashSet<ulong>();
        for (var i = 0; i < 257; i++)
        {
            var reply = await c.ReadReplyAsync();
            Assert.Equal(NbdError.None, reply.Error);
            Assert.True(cookies.Add(reply.Cookie), $"cookie {reply.Cookie} answered twice");
            if (reply.Cookie == 5) Assert.Equal(NbdChunkType.BlockStatus, reply.Chunk);
        }
        Assert.Equal(257, cookies.Count);
        Assert.True(await c.ClosedByServerAsync());
        var bytes = disk.Snapshot();
        for (var i = 0; i < 256; i++) Assert.All(bytes.AsSpan(i * 4096, 4096).ToArray(), b => Assert.Equal((byte)i, b));
    }
}
