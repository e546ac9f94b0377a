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

        var lines = Stitched(await File.ReadAllLinesAsync(trace));
        var dir = cluster.DataDirectory("d0");
        var objectPath = Path.Combine(dir, "sync.d0.obj");
        var created = Array.FindIndex(lines, l => l.Contains($"\"{objectPath}\"", StringComparison.Ordinal) && l.Contains("O_CREAT", StringComparison.Ordinal));
        Assert.True(created >= 0, $"the agent did not create {objectPath} while traced:\n{string.Join('\n', lines.Take(50))}");
        var commit = Array.FindIndex(lines, created, l => l.Contains("COMMIT", StringComparison.Ordinal));
        Assert.True(commit > created, "no PostgreSQL COMMIT after the object file was created");
        Assert.True(DirectorySynced(lines, dir, created, commit), $"the data directory {dir} was not fsynced between creating {objectPath} (line {created}) and the COMMIT (line {commit}):\n"
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

    [Fact]
    public void a_directory_sync_split_by_strace_across_two_lines_is_still_seen()
    {
        // From a CI run's trace: another thread's sendmsg interrupted the agent's openat of the directory, so the
        // descriptor (325) was on the "resumed" line. Read line by line, the directory was never opened.
        const string Dir = "/tmp/t/data/d0";
        string[] raw =
        [
            "8515  openat(AT_FDCWD, \"/tmp/t/data/d0/sync.d0.obj\", O_RDWR|O_CREAT|O_CLOEXEC, 0666) = 316",
            "8515  openat(AT_FDCWD, \"/tmp/t/data/d0/sync.d0.sum\", O_RDWR|O_CREAT|O_CLOEXEC, 0666 <unfinished ...>",
            "8575  sendmsg(307, {msg_name=NULL}, MSG_DONTWAIT|MSG_NOSIGNAL <unfinished ...>",
            "8515  <... openat resumed>)             = 321",
            "8515  fsync(316)                        = 0",
            "8515  openat(AT_FDCWD, \"/tmp/t/data/d0\", O_RDONLY|O_CLOEXEC|O_DIRECTORY <unfinished ...>",
            "8575  <... sendmsg resumed>)            = 102",
            "8515  <... openat resumed>)             = 325",
            "8515  fsync(325)                        = 0",
            "8640  sendto(267, \"Q\\0\\0\\0\\vCOMMIT\\0\", 12, 0, NULL, 0) = 12",
        ];
        Assert.False(DirectorySynced(raw, Dir, 0, raw.Length - 1));
        var lines = Stitched(raw);
        Assert.Equal(7, lines.Length);
        Assert.Equal("8515  openat(AT_FDCWD, \"/tmp/t/data/d0\", O_RDONLY|O_CLOEXEC|O_DIRECTORY)             = 325", lines[4]);
        Assert.True(DirectorySynced(lines, Dir, 0, lines.Length - 1));
        // The same trace without the directory's fsync is refused.
        Assert.False(DirectorySynced([.. lines.Where(l => !l.Contains("fsync(325)", StringComparison.Ordinal))], Dir, 0, lines.Length - 2));
    }

    /// <summary>Between the creation and the commit that records the write: the directory opened, and that descriptor fsynced.</summary>
    private static bool DirectorySynced(string[] lines, string dir, int created, int commit)
    {
        for (var i = created + 1; i < commit; i++)
        {
            var open = DirectoryOpen().Match(lines[i]);
            if (!open.Success || open.Groups["path"].Value.TrimEnd('/') != dir) continue;
            var fd = open.Groups["fd"].Value;
            if (lines.Skip(i + 1).Take(commit - i - 1).Any(l => l.Contains($"fsync({fd})", StringComparison.Ordinal))) return true;
        }
        return false;
    }

    /// <summary>
    /// strace splits a call that another thread interrupts into "1234  openat(… &lt;unfinished ...&gt;" and, later,
    /// "1234  &lt;... openat resumed&gt;) = 57": the result (the descriptor) is only on the second line. Each such pair
    /// becomes one whole line where the call returned (its result usable from there on).
    /// </summary>
    internal static string[] Stitched(IEnumerable<string> lines)
    {
        var pending = new Dictionary<string, string>(StringComparer.Ordinal);
        var whole = new List<string>();
        foreach (var line in lines)
        {
            var pid = line.Split(' ', 2)[0];
            const string Unfinished = " <unfinished ...>";
            if (line.EndsWith(Unfinished, StringComparison.Ordinal))
            {
                pending[pid] = line[..^Unfinished.Length];
                continue;
            }
            var resumed = Resumed().Match(line);
            if (resumed.Success && pending.Remove(pid, out var start))
            {
                whole.Add(start + resumed.Groups["rest"].Value);
                continue;
            }
            whole.Add(line);
        }
        return [.. whole];
    }

    private static Task<long> NeedsFullCopyMarksAsync(TestCluster cluster) => cluster.ScalarAsync(
        "SELECT count(*) FROM {schema}.mt_events WHERE stream_id = 'volume-tn' AND type = 'mirror_state_changed' AND data->>'state' = 'NeedsFullCopy'");

    // 1234  openat(AT_FDCWD, "/tmp/…/data/d0", O_RDONLY|O_CLOEXEC|O_DIRECTORY) = 57
    [GeneratedRegex("""openat\(AT_FDCWD, "(?<path>[^"]+)", [^)]*O_DIRECTORY[^)]*\)\s*= (?<fd>\d+)""")]
    private static partial Regex DirectoryOpen();

    // 1234  <... openat resumed>) = 57
    [GeneratedRegex("""^\S+\s+<\.\.\. \w+ resumed>(?<rest>.*)$""")]
    private static partial Regex Resumed();
}
