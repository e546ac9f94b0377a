using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Issue #7, items 10 and 11: what the agent records survives a power loss (the directory entry of a new object
/// file is on disk before the write is recorded) and a bus outage (a truncation notice is sent until handled).
/// </summary>
public sealed partial class AgentDurabilityTests
{
    private const int BlockSize = 4096;

    [Fact]
    public async Task a_new_object_file_is_made_durable_by_fsyncing_its_directory_before_the_write_is_recorded()
    {
        // d0 talks to PostgreSQL in clear text here, so that its COMMIT can be seen in the trace.
        await using var cluster = await TestCluster.StartAsync(processEnvironment: p => p == "agent-d0"
            ? new Dictionary<string, string> { ["TaggedMirror__Postgres"] = TestCluster.Postgres + ";SSL Mode=Disable" }
            : []);
        var pid = await cluster.AgentPidAsync("d0");
        var trace = Path.Combine(cluster.Directory, "agent-d0.strace");
        // Every thread of the real agent process: file opens, syncs, and what it sends (PostgreSQL's COMMIT among it).
        var strace = Process.Start(new ProcessStartInfo("strace")
        {
            ArgumentList = { "-f", "-qq", "-s", "64", "-e", "trace=openat,fsync,fdatasync,sendto,sendmsg,write", "-o", trace, "-p", pid.ToString(CultureInfo.InvariantCulture) },
            RedirectStandardError = true,
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException("strace did not start (install it: ops/setup.sh)");
        try
        {
            await Eventually.TrueAsync(() => Task.FromResult(File.Exists(trace) && new FileInfo(trace).Length > 0),
                TimeSpan.FromSeconds(20), () => "strace did not attach: " + (strace.HasExited ? strace.StandardError.ReadToEnd() : "(running)"));
            await cluster.CreateVolumeAsync("sync", BlockSize, 16);
            Assert.True((await cluster.WriteAsync("sync", 0, VolumeModel.Data(1, 1, BlockSize), wait: "applied")).Applied);
        }
        finally
        {
            _ = Syscall.Kill(strace.Id, 2); // SIGINT: strace detaches and leaves the agent running
            await strace.WaitForExitAsync();
        }

        var lines = await File.ReadAllLinesAsync(trace);
        var dir = cluster.DataDirectory("d0");
        var objectPath = Path.Combine(dir, "sync.d0.obj");
        var created = Array.FindIndex(lines, l => l.Contains($"\"{objectPath}\"", StringComparison.Ordinal) && l.Contains("O_CREAT", StringComparison.Ordinal));
        Assert.True(created >= 0, $"the agent did not create {objectPath} while traced:\n{string.Join('\n', lines.Take(50))}");
        var commit = Array.FindIndex(lines, created, l => l.Contains("COMMIT", StringComparison.Ordinal));
        Assert.True(commit > created, "no PostgreSQL COMMIT after the object file was created");
        // Between the creation and the commit that records the write: the directory opened, and that descriptor fsynced.
        var dirSynced = false;
        for (var i = created + 1; i < commit && !dirSynced; i++)
        {
            var open = DirectoryOpen().Match(lines[i]);
            if (!open.Success || open.Groups["path"].Value.TrimEnd('/') != dir) continue;
            var fd = open.Groups["fd"].Value;
            dirSynced = lines.Skip(i + 1).Take(commit - i - 1).Any(l => l.Contains($"fsync({fd}", StringComparison.Ordinal));
        }
        Assert.True(dirSynced, $"the data directory {dir} was not fsynced between creating {objectPath} (line {created}) and the COMMIT (line {commit}):\n"
            + string.Join('\n', lines.Skip(created).Take(commit - created + 1).Where(l => !l.Contains("write(", StringComparison.Ordinal)).Take(60)));
    }

    [Fact]
    public async Task a_truncation_notice_lost_while_the_bus_is_down_is_sent_again_until_the_controller_has_handled_it()
    {
        await using var rabbit = TcpProxy.ToRabbitMq();
        await using var cluster = await TestCluster.StartAsync(
            controllerSettings: new()
            {
                ["Controller__MaxLagBytes"] = (64 * 1024 * 1024).ToString(CultureInfo.InvariantCulture),
                ["Controller__LagTimeout"] = "00:02:00",
                ["Controller__FullCopyChunkBlocks"] = "4",
            },
            // d1 reaches RabbitMQ only through the relay, so the test can take the bus away from d1 alone.
            processEnvironment: p => p == "agent-d1"
                ? new Dictionary<string, string>
                {
                    ["TaggedMirror__RabbitMqHost"] = "127.0.0.1",
                    ["TaggedMirror__RabbitMqPort"] = rabbit.Port.ToString(CultureInfo.InvariantCulture),
                    ["Agent__ReacknowledgeAfter"] = "00:00:02",
                }
                : []);
        const long blocks = 512;
        await cluster.CreateVolumeAsync("tn", BlockSize, blocks);
        var model = new VolumeModel(BlockSize, blocks);
        await new WriteLoad(cluster, "tn", model, seed: 3).RunAsync(writes: 50, concurrency: 2);
        await cluster.WaitTagTablesEmptyAsync();

        await cluster.Agent("d1").StopAsync();
        // Writes d1 misses, then deleted from its log (as retention does), so d1's next offset is gone. The
        // window-filling way is FaultTests' device_stopped_past_its_partition_window…
        await new WriteLoad(cluster, "tn", model, seed: 4).RunAsync(writes: 20, concurrency: 2, maxBlocks: 16);
        Assert.True(DeviceTopic.DeleteAllRecords(cluster, "d1") > await cluster.AgentNextOffsetAsync("d1"), "d1 had consumed the writes it was stopped for");
        rabbit.Block();
        await cluster.StartAgentAsync("d1", waitRunning: false);
        await Eventually.TrueAsync(async () => (await cluster.AgentStatusAsync("d1")).GetProperty("truncationDetected").GetBoolean(),
            TimeSpan.FromSeconds(60), () => "d1 did not detect the truncation\n" + cluster.Logs());
        Assert.Equal(1, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE stream_id = 'tagtable-d1' AND type = 'log_truncated'"));
        // Longer than a publish attempt (5 s): the first notice is gone for good, and nothing reached the controller.
        await Task.Delay(TimeSpan.FromSeconds(8));
        Assert.Equal(0, await NeedsFullCopyMarksAsync(cluster));

        rabbit.Unblock();
        await Eventually.TrueAsync(async () => await NeedsFullCopyMarksAsync(cluster) == 1,
            TimeSpan.FromSeconds(60), () => "the controller never heard of the truncation once the bus was back\n" + cluster.Logs());
        // A mirror that needs a full copy is never read from: reads return what was written, not d1's stale blocks.
        // (A full copy in 4-block fenced steps outlasts these reads; the state is checked on both sides of them.)
        Assert.Equal("NeedsFullCopy", await cluster.MirrorStateAsync("tn", "d1"));
        await Mirrors.AssertReadsEqualAsync(cluster, "tn", model.Expected(), BlockSize, chunkBlocks: 64);
        Assert.Equal("NeedsFullCopy", await cluster.MirrorStateAsync("tn", "d1"));

        await cluster.WaitConvergedAsync("tn");
        Assert.Equal(blocks, (await cluster.ResyncsAsync("tn")).Where(r => r.Tag is null).Sum(r => (long)r.BlockCount));
        await cluster.WaitFullCopyMarksClearedAsync();
        // Once the need is cleared the notice stops: no second full copy after a few re-send periods.
        await Task.Delay(TimeSpan.FromSeconds(5));
        Assert.Equal(1, await NeedsFullCopyMarksAsync(cluster));
        var expected = model.Expected();
        Mirrors.AssertObjectFilesEqual(cluster, "tn", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "tn", expected, BlockSize);
    }

    private static Task<long> NeedsFullCopyMarksAsync(TestCluster cluster) => cluster.ScalarAsync(
        "SELECT count(*) FROM {schema}.mt_events WHERE stream_id = 'volume-tn' AND type = 'mirror_state_changed' AND data->>'state' = 'NeedsFullCopy'");

    // 1234  openat(AT_FDCWD, "/tmp/…/data/d0", O_RDONLY|O_CLOEXEC|O_DIRECTORY) = 57
    [GeneratedRegex("""openat\(AT_FDCWD, "(?<path>[^"]+)", [^)]*O_DIRECTORY[^)]*\)\s*= (?<fd>\d+)""")]
    private static partial Regex DirectoryOpen();
}
