using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Spectre.Console;
using TaggedMirror.Cli.Api;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm bench-resync</c>: how much a mirror whose log was unreachable copies to catch up, against the floor (the
/// blocks written while it was away) and what write-intent-bitmap schemes would copy (md's 64 MiB bitmap chunks, DRBD's
/// 4 MiB activity-log extents, a full resync), and how long it takes to converge. Takes d1's log down through the
/// devkafka control channel (broker 2 leads tm.device.d1, broker 1 tm.device.d0). Figures go to a JSON file.
/// </summary>
internal static class BenchResyncCommand
{
    private const string Source = "d0";
    private const string Target = "d1";
    private const int SourceBroker = 1;
    private const int TargetBroker = 2;
    private const int WarmupWrites = 8;
    private const long MdChunkBytes = 64L << 20;
    private const long DrbdExtentBytes = 4L << 20;
    private static readonly string[] Mirrors = [Source, Target];
    private static readonly TimeSpan ConvergeTimeout = TimeSpan.FromMinutes(5);
    private static readonly JsonSerializerOptions OutputJson = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static Command Create()
    {
        var controller = CommonOptions.Controller();
        var agents = CommonOptions.Agents();
        var volumeSize = new Option<string>("--volume-size") { Description = "Size of the fresh volume: bytes, or with KiB/MiB/GiB", DefaultValueFactory = _ => "1GiB" };
        var blockSize = new Option<int>("--block-size") { Description = "The volume's block size in bytes", DefaultValueFactory = _ => 4096 };
        var partialWrites = new Option<int>("--partial-writes") { Description = "Writes made while d1's log is unreachable", DefaultValueFactory = _ => 200 };
        var writeBlocks = new Option<string>("--write-blocks") { Description = "Blocks per write: N, or MIN..MAX for uniformly random sizes", DefaultValueFactory = _ => "1..16" };
        var controlPort = new Option<int?>("--kafka-control-port") { Description = "devkafka's control port (default: .run/kafka.bootstrap.control)" };
        var output = new Option<string?>("--output") { Description = "Result file (default bench-results/resync-<UTC timestamp>.json)" };
        var seed = new Option<int?>("--seed") { Description = "Seed for offsets, sizes and data (default: random, printed)" };
        var command = new Command("bench-resync", "Measure what a mirror copies, and how long it takes, to catch up after its log was unreachable")
        {
            controller, volumeSize, blockSize, partialWrites, writeBlocks, controlPort, output, seed, agents,
        };
        command.SetAction((parse, ct) => Program.RunAsync(() =>
        {
            var now = DateTime.UtcNow;
            var (minBlocks, maxBlocks) = ParseBlockRange(parse.GetValue(writeBlocks)!);
            return RunAsync(new Settings(
                TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"),
                "resync-" + now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture),
                CommonOptions.ParseSize(parse.GetValue(volumeSize)!, "--volume-size"),
                parse.GetValue(blockSize),
                parse.GetValue(partialWrites),
                minBlocks,
                maxBlocks,
                parse.GetValue(controlPort),
                parse.GetValue(output) ?? Path.Combine("bench-results", $"resync-{now.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}.json"),
                parse.GetValue(seed) ?? Random.Shared.Next(),
                CommonOptions.ParseAgents(parse.GetValue(agents)!)), ct);
        }));
        return command;
    }

    private sealed record Settings(Uri Controller, string Volume, long VolumeBytes, int BlockSize, int PartialWrites, int MinBlocks, int MaxBlocks,
        int? ControlPort, string Output, int Seed, Uri[] Agents);

    /// <summary>One write made during the outage: <c>[FirstBlock, FirstBlock + Blocks)</c>.</summary>
    private sealed record OutageWrite(long FirstBlock, int Blocks, string Tag, int MirrorsHolding, double Ms);

    private sealed record StateChange(double Seconds, string Device, string State, string? Reason);

    private static async Task<int> RunAsync(Settings s, CancellationToken ct)
    {
        if (s.BlockSize < 512 || (s.BlockSize & (s.BlockSize - 1)) != 0) throw new CliException("--block-size must be a power of two of at least 512");
        if (s.VolumeBytes <= 0 || s.VolumeBytes % s.BlockSize != 0) throw new CliException($"--volume-size must be a positive multiple of the block size {s.BlockSize}");
        if (s.PartialWrites < 1) throw new CliException("--partial-writes must be at least 1");
        var blocks = s.VolumeBytes / s.BlockSize;
        if (s.MaxBlocks > blocks) throw new CliException($"--write-blocks {s.MaxBlocks} exceeds the volume's {blocks} blocks");
        var port = s.ControlPort ?? await ReadControlPortAsync(ct);
        await ControlAsync(port, "ping", ct);

        using var http = new TmHttp(4, TimeSpan.FromSeconds(60));
        var controllerInfo = await http.GetControllerAsync(s.Controller, ct);
        if (!await http.CreateVolumeAsync(s.Controller, s.Volume, s.BlockSize, blocks, Mirrors, ct))
            throw new CliException($"volume {s.Volume} exists already; run again in a second");
        var rng = new Random(s.Seed);
        var deliveryTimeout = Environment.GetEnvironmentVariable("Controller__DeliveryTimeout");
        AnsiConsole.MarkupLine($"bench-resync: volume [bold]{s.Volume}[/] ({FormatBytes(s.VolumeBytes)}, {blocks} blocks of {s.BlockSize} B on {Source}, {Target}), " +
            $"{s.PartialWrites} writes of {s.MinBlocks}..{s.MaxBlocks} blocks while {Target}'s log is down, seed {s.Seed}, devkafka control port {port}");

        // d0's log on broker 1, d1's on broker 2: taking broker 2 down makes exactly d1's log undeliverable.
        await ControlAsync(port, $"leader tm.device.{Source} 0 {SourceBroker}", ct);
        await ControlAsync(port, $"leader tm.device.{Target} 0 {TargetBroker}", ct);
        for (var i = 0; i < WarmupWrites; i++)
        {
            var n = rng.Next(s.MinBlocks, s.MaxBlocks + 1);
            await http.WriteAsync(s.Controller, s.Volume, rng.NextInt64(0, blocks - n + 1), RandomBytes(rng, n * s.BlockSize), false, ct);
        }
        var settled = await WaitAsync(http, s, TimeSpan.FromSeconds(60), "the warm-up writes to settle", v => AllInSync(v), ct);
        var before = settled.Resyncs ?? throw new CliException($"{s.Controller} answers volume status without resyncs (an older controller?)");

        // The outage. Only the first write waits: its copy to d1 times out, d1 goes Degraded and is skipped afterwards.
        var writes = new List<OutageWrite>(s.PartialWrites);
        var expected = new Dictionary<long, (byte[] Data, int Offset)>();
        double firstWriteSeconds;
        double outageSeconds;
        ConvergeResult converged;
        await ControlAsync(port, $"down {TargetBroker}", ct);
        var brokerDown = true;
        var outageClock = Stopwatch.StartNew();
        try
        {
            for (var i = 0; i < s.PartialWrites; i++)
            {
                var n = rng.Next(s.MinBlocks, s.MaxBlocks + 1);
                var first = rng.NextInt64(0, blocks - n + 1);
                var data = RandomBytes(rng, n * s.BlockSize);
                var clock = Stopwatch.StartNew();
                var answer = await http.WriteAsync(s.Controller, s.Volume, first, data, false, ct);
                writes.Add(new OutageWrite(first, n, answer.Tag, answer.MirrorsHolding, clock.Elapsed.TotalMilliseconds));
                for (var b = 0; b < n; b++) expected[first + b] = (data, b * s.BlockSize);
                if (i == 0)
                {
                    var degraded = await WaitAsync(http, s, TimeSpan.FromSeconds(30), $"{Target} to be Degraded",
                        v => Mirror(v, Target).State == "Degraded", ct);
                    if (Mirror(degraded, Source).State != "InSync")
                        throw new CliException($"{Source} is {Mirror(degraded, Source).State} ({Mirror(degraded, Source).Reason}) during {Target}'s outage; expected InSync");
                    AnsiConsole.MarkupLine($"outage: first write took {clock.Elapsed.TotalSeconds:0.00} s; {Target} Degraded: {Markup.Escape(Mirror(degraded, Target).Reason ?? "")}");
                }
            }
            outageSeconds = outageClock.Elapsed.TotalSeconds;
            firstWriteSeconds = writes[0].Ms / 1000;
            var during = await http.GetVolumeAsync(s.Controller, s.Volume, ct) ?? throw new CliException($"volume {s.Volume} vanished");
            if (Mirror(during, Target).State != "Degraded")
                throw new CliException($"{Target} is {Mirror(during, Target).State} at the end of the outage, not Degraded");
            AnsiConsole.MarkupLine($"outage: {writes.Count} writes in {outageSeconds:0.00} s; {Target} Degraded, {Source} {Mirror(during, Source).State} with {Mirror(during, Source).LiveTagEntries} live tag entries");

            await ControlAsync(port, $"up {TargetBroker}", ct);
            brokerDown = false;
            converged = await ConvergeAsync(http, s, ct);
        }
        finally
        {
            if (brokerDown)
            {
                try
                {
                    await ControlAsync(port, $"up {TargetBroker}", CancellationToken.None);
                }
                catch (Exception ex) when (ex is CliException or IOException or SocketException)
                {
                    AnsiConsole.MarkupLine($"[yellow]warning:[/] could not bring broker {TargetBroker} back up: {Markup.Escape(ex.Message)}");
                }
            }
        }
        AnsiConsole.MarkupLine($"converged: both mirrors InSync with no live tag entries {converged.Seconds:0.00} s after broker {TargetBroker} came back");

        // A moment for the resync log to settle: the figures are read once more after convergence.
        await Task.Delay(500, ct);
        var after = (await http.GetVolumeAsync(s.Controller, s.Volume, ct) ?? throw new CliException($"volume {s.Volume} vanished")).Resyncs!;
        var bytesCopied = after.BytesCopied - before.BytesCopied;
        var resyncCount = after.Count - before.Count;

        var ranges = writes.Select(w => (w.FirstBlock, (long)w.Blocks)).ToList();
        var floorBytes = UnionBlocks(ranges) * s.BlockSize;
        var writtenBytes = writes.Sum(w => (long)w.Blocks * s.BlockSize);
        var mdChunks = DistinctUnits(ranges, s.BlockSize, MdChunkBytes);
        var drbdExtents = DistinctUnits(ranges, s.BlockSize, DrbdExtentBytes);
        var mdBytes = Math.Min(mdChunks * MdChunkBytes, s.VolumeBytes);
        var drbdBytes = Math.Min(drbdExtents * DrbdExtentBytes, s.VolumeBytes);

        var verification = await VerifyAsync(http, s, converged.Volume, expected, ct);

        var figures = new[]
        {
            new Figure("tagged resync (measured)", bytesCopied, floorBytes),
            new Figure("floor: blocks written in the outage", floorBytes, floorBytes),
            new Figure($"md bitmap: {mdChunks} × 64 MiB chunks", mdBytes, floorBytes),
            new Figure($"DRBD activity log: {drbdExtents} × 4 MiB extents", drbdBytes, floorBytes),
            new Figure("full resync", s.VolumeBytes, floorBytes),
        };
        var result = new
        {
            kind = "resync",
            timestamp = DateTimeOffset.UtcNow,
            machine = new
            {
                cores = Environment.ProcessorCount,
                cpu = BenchCommand.CpuModel(),
                memoryBytes = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes,
                os = RuntimeInformation.OSDescription,
                runtime = RuntimeInformation.FrameworkDescription,
                host = Environment.MachineName,
            },
            git = BenchCommand.Git("rev-parse", "HEAD"),
            gitDirty = BenchCommand.Git("status", "--porcelain", "--untracked-files=no") is { Length: > 0 },
            parameters = new
            {
                controller = s.Controller.ToString(),
                volume = s.Volume,
                volumeBytes = s.VolumeBytes,
                volumeBlocks = blocks,
                blockSize = s.BlockSize,
                partialWrites = s.PartialWrites,
                writeBlocksMin = s.MinBlocks,
                writeBlocksMax = s.MaxBlocks,
                seed = s.Seed,
                warmupWrites = WarmupWrites,
                source = new { device = Source, broker = SourceBroker },
                target = new { device = Target, broker = TargetBroker },
                kafkaControlPort = port,
                deliveryTimeout,
                controllerId = controllerInfo.ControllerId,
                epoch = controllerInfo.Epoch,
            },
            outage = new
            {
                writes = writes.Count,
                writtenBytes,
                seconds = outageSeconds,
                firstWriteSeconds,
                otherWritesMeanMs = writes.Count > 1 ? writes.Skip(1).Average(w => w.Ms) : 0,
            },
            resync = new
            {
                convergeSeconds = converged.Seconds,
                resyncs = resyncCount,
                bytesCopied,
                bytesCopiedBefore = before.BytesCopied,
                countBefore = before.Count,
                targets = after.Recent.Select(r => r.Target).Distinct().ToArray(),
                timeline = converged.Timeline,
            },
            comparison = figures.Select(f => new { scheme = f.Name, bytes = f.Bytes, ratioToFloor = f.Ratio }).ToArray(),
            floorBytes,
            mdBitmap = new { chunkBytes = MdChunkBytes, chunks = mdChunks, bytes = mdBytes },
            drbdActivityLog = new { extentBytes = DrbdExtentBytes, extents = drbdExtents, bytes = drbdBytes },
            fullResyncBytes = s.VolumeBytes,
            verification,
            writes = writes.Select(w => new { firstBlock = w.FirstBlock, blocks = w.Blocks, tag = w.Tag, mirrorsHolding = w.MirrorsHolding, ms = w.Ms }).ToArray(),
        };
        var outputPath = Path.GetFullPath(s.Output);
        Directory.CreateDirectory(Path.GetDirectoryName(outputPath)!);
        await File.WriteAllTextAsync(outputPath, JsonSerializer.Serialize(result, OutputJson) + "\n", ct);

        var table = new Table().Border(TableBorder.Rounded)
            .Title($"tm bench-resync — {s.PartialWrites} writes of {s.MinBlocks}..{s.MaxBlocks} × {s.BlockSize} B on {FormatBytes(s.VolumeBytes)}");
        table.AddColumns("resync", "bytes", "MiB", "× floor");
        foreach (var f in figures)
        {
            table.AddRow(Markup.Escape(f.Name), f.Bytes.ToString("N0", CultureInfo.InvariantCulture),
                (f.Bytes / (1024.0 * 1024)).ToString("0.00", CultureInfo.InvariantCulture),
                double.IsNaN(f.Ratio) ? "—" : f.Ratio.ToString("0.00", CultureInfo.InvariantCulture));
        }
        table.Caption($"{resyncCount} resyncs, converged in {converged.Seconds:0.00} s; outage {outageSeconds:0.00} s (first write {firstWriteSeconds:0.00} s)");
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine(verification.Ok
            ? $"verified: {verification.Blocks} blocks written in the outage read back identical on {Source} and {Target}"
            : $"[red]verification failed:[/] {Markup.Escape(verification.Detail ?? "")}");
        AnsiConsole.MarkupLine($"results: {Markup.Escape(outputPath)}");
        return verification.Ok ? 0 : 1;
    }

    private sealed record Figure(string Name, long Bytes, long Floor)
    {
        public double Ratio => Floor == 0 ? double.NaN : (double)Bytes / Floor;
    }

    private sealed record ConvergeResult(double Seconds, VolumeStatus Volume, StateChange[] Timeline);

    /// <summary>From broker 2's return until both mirrors are InSync with no live tag entries; records state changes.</summary>
    private static async Task<ConvergeResult> ConvergeAsync(TmHttp http, Settings s, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var timeline = new List<StateChange>();
        var last = new Dictionary<string, string>(StringComparer.Ordinal);
        while (true)
        {
            var v = await http.GetVolumeAsync(s.Controller, s.Volume, ct) ?? throw new CliException($"volume {s.Volume} vanished");
            var elapsed = clock.Elapsed.TotalSeconds;
            foreach (var m in v.Mirrors)
            {
                if (!last.TryGetValue(m.DeviceId, out var state) || state != m.State)
                {
                    last[m.DeviceId] = m.State;
                    timeline.Add(new StateChange(elapsed, m.DeviceId, m.State, m.Reason));
                }
            }
            if (AllInSync(v)) return new ConvergeResult(elapsed, v, [.. timeline]);
            if (clock.Elapsed > ConvergeTimeout)
                throw new CliException($"mirrors did not converge within {ConvergeTimeout.TotalMinutes:0} min: " + Describe(v));
            await Task.Delay(25, ct);
        }
    }

    private static bool AllInSync(VolumeStatus v) => v.Mirrors.All(m => m.State == "InSync" && m.LiveTagEntries == 0);

    private static async Task<VolumeStatus> WaitAsync(TmHttp http, Settings s, TimeSpan timeout, string what, Func<VolumeStatus, bool> done, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var v = await http.GetVolumeAsync(s.Controller, s.Volume, ct) ?? throw new CliException($"volume {s.Volume} vanished");
            if (done(v)) return v;
            if (clock.Elapsed > timeout) throw new CliException($"timed out after {timeout.TotalSeconds:0} s waiting for {what}: {Describe(v)}");
            await Task.Delay(25, ct);
        }
    }

    private static string Describe(VolumeStatus v) =>
        string.Join(", ", v.Mirrors.Select(m => $"{m.DeviceId} {m.State} ({m.LiveTagEntries} live tag entries{(m.Reason is null ? "" : "; " + m.Reason)})"));

    private static MirrorStatus Mirror(VolumeStatus v, string device) =>
        v.Mirrors.FirstOrDefault(m => m.DeviceId == device) ?? throw new CliException($"volume {v.Name} has no mirror on {device}");

    private sealed record Verification(bool Ok, long Blocks, string? Detail);

    /// <summary>Reads every block written during the outage from both devices' objects and compares it with what was written.</summary>
    private static async Task<Verification> VerifyAsync(TmHttp http, Settings s, VolumeStatus v, Dictionary<long, (byte[] Data, int Offset)> expected, CancellationToken ct)
    {
        var byDevice = new Dictionary<string, Uri>(StringComparer.Ordinal);
        foreach (var agent in s.Agents)
        {
            try
            {
                byDevice[(await http.GetAgentStatusAsync(agent, ct)).DeviceId] = agent;
            }
            catch (CliException ex)
            {
                return new Verification(false, 0, $"agent {agent} did not answer: {ex.Message}");
            }
        }
        var sorted = expected.Keys.Order().ToArray();
        foreach (var m in v.Mirrors)
        {
            if (!byDevice.TryGetValue(m.DeviceId, out var agent)) return new Verification(false, 0, $"no agent among --agents serves {m.DeviceId}");
            var i = 0;
            while (i < sorted.Length)
            {
                var j = i;
                while (j + 1 < sorted.Length && sorted[j + 1] == sorted[j] + 1 && j + 1 - i < 256) j++;
                var count = j - i + 1;
                var bytes = await http.ReadObjectAsync(agent, m.ObjectId, sorted[i] * s.BlockSize, count * s.BlockSize, ct);
                for (var k = 0; k < count; k++)
                {
                    var (data, offset) = expected[sorted[i + k]];
                    if (bytes.Length < (k + 1) * s.BlockSize ||
                        !bytes.AsSpan(k * s.BlockSize, s.BlockSize).SequenceEqual(data.AsSpan(offset, s.BlockSize)))
                    {
                        return new Verification(false, expected.Count, $"{m.DeviceId} ({m.ObjectId}) differs from what was written at block {sorted[i + k]}");
                    }
                }
                i = j + 1;
            }
        }
        return new Verification(true, expected.Count, null);
    }

    /// <summary>Blocks in the union of the ranges.</summary>
    internal static long UnionBlocks(List<(long First, long Count)> ranges)
    {
        long total = 0, end = long.MinValue;
        foreach (var (first, count) in ranges.OrderBy(r => r.First))
        {
            var start = Math.Max(first, end);
            var stop = first + count;
            if (stop > start) total += stop - start;
            end = Math.Max(end, stop);
        }
        return total;
    }

    /// <summary>Distinct units of <paramref name="unitBytes"/> (bitmap chunks, extents) the ranges touch.</summary>
    internal static long DistinctUnits(List<(long First, long Count)> ranges, int blockSize, long unitBytes)
    {
        var units = new HashSet<long>();
        foreach (var (first, count) in ranges)
        {
            var lo = first * blockSize / unitBytes;
            var hi = ((first + count) * blockSize - 1) / unitBytes;
            for (var u = lo; u <= hi; u++) units.Add(u);
        }
        return units.Count;
    }

    private static byte[] RandomBytes(Random rng, int length)
    {
        var data = new byte[length];
        rng.NextBytes(data);
        return data;
    }

    /// <summary>Sends one line to devkafka's control channel; anything but <c>ok</c> is an error.</summary>
    private static async Task ControlAsync(int port, string command, CancellationToken ct)
    {
        string? answer;
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, port, ct);
            var stream = client.GetStream();
            await stream.WriteAsync(Encoding.UTF8.GetBytes(command + "\n"), ct);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            answer = await reader.ReadLineAsync(ct);
        }
        catch (Exception ex) when (ex is SocketException or IOException)
        {
            throw new CliException($"devkafka control port {port}: '{command}' failed: {ex.Message} — {TmHttp.StackHint}", 2);
        }
        if (answer != "ok") throw new CliException($"devkafka control port {port}: '{command}' answered '{answer ?? "(nothing)"}'");
    }

    private static async Task<int> ReadControlPortAsync(CancellationToken ct)
    {
        var runDir = Environment.GetEnvironmentVariable("TM_RUN_DIR") is { Length: > 0 } dir ? dir : ".run";
        var file = Path.Combine(runDir, "kafka.bootstrap.control");
        if (!File.Exists(file))
            throw new CliException($"no devkafka control port: pass --kafka-control-port, or run from the repository root with the stack running ({Path.GetFullPath(file)} is missing)");
        var text = (await File.ReadAllTextAsync(file, ct)).Trim();
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536
            ? port
            : throw new CliException($"{Path.GetFullPath(file)} holds '{text}', not a port");
    }

    /// <summary><c>N</c> or <c>MIN..MAX</c>.</summary>
    internal static (int Min, int Max) ParseBlockRange(string text)
    {
        var parts = text.Split("..", StringSplitOptions.TrimEntries);
        if (parts.Length is 1 or 2 &&
            int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var min) &&
            int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var max) &&
            min >= 1 && max >= min && max <= 4096)
        {
            return (min, max);
        }

        throw new CliException($"--write-blocks '{text}' is not N or MIN..MAX with 1 <= MIN <= MAX <= 4096");
    }

    private static string FormatBytes(long bytes) =>
        bytes % (1L << 30) == 0 ? $"{bytes >> 30} GiB" : bytes % (1L << 20) == 0 ? $"{bytes >> 20} MiB" : $"{bytes} B";
}
