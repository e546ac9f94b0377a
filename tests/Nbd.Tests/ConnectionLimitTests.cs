using TaggedMirror.Nbd.Protocol;
using TaggedMirror.Nbd.Server;
using TaggedMirror.Nbd.Tests.Support;

namespace TaggedMirror.Nbd.Tests;

/// <summary>
/// What a client that connects too often can make the server hold: at most <see cref="NbdServerOptions.MaxConnections"/>
/// connections (a connection past them is closed as soon as it is accepted, the others go on), and at most ten
/// refusal lines a second in the log.
/// </summary>
public sealed class ConnectionLimitTests
{
    [Fact]
    public async Task a_connection_past_the_limit_is_closed_at_once_and_one_is_served_again_once_another_ended()
    {
        var disk = new MemoryExport("disk", 1024 * 1024);
        await using var server = new TestServer(new NbdServerOptions { MaxConnections = 2 }, disk);
        var waiting = await RawClient.HandshakeAsync(server.Port);
        await using var serving = await RawClient.OpenAsync(server.Port, "disk");

        await using (var third = await RawClient.ConnectAsync(server.Port))
            Assert.True(await third.ClosedByServerAsync(), "a third connection got a greeting and was kept open");

        // The two served go on.
        var data = Enumerable.Range(0, 512).Select(i => (byte)(i * 7)).ToArray();
        await serving.SendRequestAsync(NbdCommand.Write, 1, 4096, 512, data);
        Assert.Equal(NbdError.None, (await serving.ReadReplyAsync()).Error);

        // One ends: a new connection is served (once the server has seen the end).
        await waiting.DisposeAsync();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            try
            {
                await using var again = await RawClient.OpenAsync(server.Port, "disk");
                await again.SendRequestAsync(NbdCommand.Read, 2, 4096, 512);
                Assert.Equal(data, (await again.ReadReplyAsync()).Data);
                break;
            }
            catch (Exception ex) when (ex is IOException or EndOfStreamException or System.Net.Sockets.SocketException && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
        Assert.Equal(1, disk.Writes);
    }

    [Fact]
    public void refusals_are_logged_at_most_the_budget_a_second_and_the_next_line_counts_those_held_back()
    {
        var time = new ManualTime();
        var budget = new LogBudget(3, time);
        long[] Take(int n) => [.. Enumerable.Range(0, n).Select(_ => budget.TryTake(out var held) ? held : -1)];

        Assert.Equal([0, 0, 0, -1, -1], Take(5));
        time.Now += 999; // the same second
        Assert.Equal([-1], Take(1));
        time.Now += 1;
        Assert.Equal([3, 0, 0, -1], Take(4));
        time.Now += 5000; // quiet for a while: the next line says one was held back
        Assert.Equal([1, 0], Take(2));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void a_limit_below_one_connection_is_refused(int max)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new NbdServerOptions { MaxConnections = max }.Validate());
    }

    private sealed class ManualTime : TimeProvider
    {
        public long Now { get; set; }

        public override long TimestampFrequency => 1000;

        public override long GetTimestamp() => Now;
    }
}
