using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;
using Spectre.Console;
using TaggedMirror.Cli.Api;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm bench-rebuild</c>: how fast a device is rebuilt from its log and a volume verified, each against its
/// baseline in the same run. Writes a fresh volume, then (1) consumes the device's topic from its start with a plain
/// Confluent.Kafka consumer, timing it, (2) rebuilds the device (<c>tm rebuild</c>) and times the device's replay of
/// the same offsets as it records it, (3) verifies the volume and times it against <c>cat</c> of the mirrors' object
/// files. Steps 1 and 2 run <c>--rounds</c> times, each rebuild paired with the consume just before it: the first
/// is an agent's first rebuild (its one-off costs included), the median of the pairs what a rebuild usually reaches.
/// Results in a JSON file; the ratios are what to compare (the machines are noisy: one consume of 4 MiB took from
/// 0.04 to 0.25 s on the same stack).
/// <para>
/// A volume's writes all go to one partition of a device topic (they are keyed by its object id), and the development
/// broker keeps 5 MiB per partition. <c>--volumes N</c> writes N volumes whose objects on the rebuilt device land in N
/// different partitions (the names chosen by the producers' default partitioner, CRC-32 of the key modulo the
/// partitions), so the log holds N times as much, read as a topic of N partitions is read (docs/benchmarks.md, "A log of
/// several partitions").
/// </para>
/// </summary>
internal static class BenchRebuildCommand
{
    private static readonly string[] Mirrors = ["d0", "d1"];
    private static readonly JsonSerializerOptions OutputJson = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static Command Create()
    {
        var controller = CommonOptions.Controller();
        var kafka = new Option<string?>("--kafka") { Description = "Bootstrap servers for the raw consume (default: TaggedMirror__Kafka, else .run/kafka.bootstrap)" };
        var device = new Option<string>("--device") { Description = "The device to rebuild", DefaultValueFactory = _ => "d1" };
        var writes = new Option<int>("--writes") { Description = "Writes to each volume before the rebuild (the development broker keeps 5 MiB per partition: keep writes × size under it)", DefaultValueFactory = _ => 1000 };
        var volumes = new Option<int>("--volumes") { Description = "Volumes written, each in a partition of its own of the device's topic (1..16; the topic needs as many partitions: ops/bench-rebuild.sh sets TM_DEVICE_PARTITIONS)", DefaultValueFactory = _ => 1 };
        var size = new Option<int>("--size") { Description = "Bytes per write (a multiple of 4096)", DefaultValueFactory = _ => 4096 };
        var concurrency = new Option<int>("--concurrency") { Description = "Writes in flight", DefaultValueFactory = _ => 16 };
        var volumeSize = new Option<string?>("--volume-size") { Description = "Size of the fresh volume: bytes, or with KiB/MiB/GiB (default: writes × size, so every block is written once and cat reads what verify reads)" };
        var dataDir = new Option<string?>("--data-dir") { Description = "Where the devices keep their files, for the cat baseline (default: $TM_RUN_DIR/data, else .run/data)" };
        var rounds = new Option<int>("--rounds") { Description = "Raw consumes and rebuilds, in pairs (1..20); the first rebuild and the pairs' median are reported", DefaultValueFactory = _ => 3 };
        var output = new Option<string?>("--output") { Description = "Result file (default bench-results/rebuild-<UTC timestamp>.json)" };
        var command = new Command("bench-rebuild", "Measure a rebuild from the log against a raw consume of it, and a verify against cat of the object files")
        {
            controller, kafka, device, writes, volumes, size, concurrency, volumeSize, dataDir, rounds, output,
        };
        command.SetAction((parse, ct) => Program.RunAsync(() =>
        {
            var now = DateTime.UtcNow;
            var runDir = Environment.GetEnvironmentVariable("TM_RUN_DIR") is { Length: > 0 } d ? d : ".run";
            return RunAsync(new Settings(
                TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"),
                BenchCommand.ResolveBootstrap(parse.GetValue(kafka)),
                parse.GetValue(device)!,
                "rebuild-" + now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture),
                parse.GetValue(writes),
                parse.GetValue(volumes),
                parse.GetValue(size),
                parse.GetValue(concurrency),
                parse.GetValue(volumeSize) is { } vs ? CommonOptions.ParseSize(vs, "--volume-size") : (long)parse.GetValue(writes) * parse.GetValue(size),
                parse.GetValue(dataDir) ?? Path.Combine(runDir, "data"),
                parse.GetValue(rounds),
                parse.GetValue(output) ?? Path.Combine("bench-results", $"rebuild-{now.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}.json")), ct);
        }));
        return command;
    }

    private sealed record Settings(
        Uri Controller, string Bootstrap, string Device, string Volume, int Writes, int Volumes, int Size, int Concurrency, long VolumeBytes, string DataDir, int Rounds, string Output);

    private const int BlockSize = 4096;

    private static async Task<int> RunAsync(Settings s, CancellationToken ct)
    {
        if (!Mirrors.Contains(s.Device)) throw new CliException($"--device must be one of {string.Join(", ", Mirrors)}");
        if (s.Writes < 1 || s.Concurrency < 1) throw new CliException("--writes and --concurrency must be at least 1");
        if (s.Rounds is < 1 or > 20) throw new CliException("--rounds must be from 1 to 20");
        if (s.Volumes is < 1 or > 16) throw new CliException("--volumes must be from 1 to 16");
        if (s.Size < BlockSize || s.Size % BlockSize != 0) throw new CliException($"--size must be a positive multiple of {BlockSize}");
        if (s.VolumeBytes < s.Size || s.VolumeBytes % BlockSize != 0) throw new CliException($"--volume-size must be a multiple of {BlockSize} and hold one write");
        if ((long)s.Writes * s.Size > 5 * 1024 * 1024)
            AnsiConsole.MarkupLine($"[yellow]{s.Writes} writes of {s.Size} B to a volume are more than the development broker keeps in a partition (5 MiB): its log will not hold its start[/]");
        var blocks = s.VolumeBytes / BlockSize;
        var writeBlocks = s.Size / BlockSize;
        var topic = "tm.device." + s.Device;
        var partitions = PartitionCount(s.Bootstrap, topic);
        var names = VolumeNames(s.Volume, s.Device, s.Volumes, partitions);
        using var http = new TmHttp(s.Concurrency + 2, TimeSpan.FromSeconds(60));
        foreach (var name in names)
        {
            if (!await http.CreateVolumeAsync(s.Controller, name, BlockSize, blocks, Mirrors, ct))
                throw new CliException($"volume {name} exists already; run again in a second");
        }
        AnsiConsole.MarkupLine($"bench-rebuild: {(names.Length == 1 ? "volume" : $"{names.Length} volumes")} [bold]{string.Join(", ", names)}[/] ({blocks} blocks of {BlockSize} B on d0, d1), {s.Writes} writes of {s.Size} B to each at {s.Concurrency} in flight, then a rebuild of {s.Device}");
        var rng = new Random(7);
        var payload = new byte[s.Size];
        rng.NextBytes(payload);
        var total = s.Writes * names.Length;
        await ClosedLoop.RunAsync(total, s.Concurrency, new long[total],
            (i, token) => http.WriteAsync(s.Controller, names[i % names.Length], (long)(i / names.Length) * writeBlocks % (blocks - writeBlocks + 1), payload, false, token), ct);
        await WaitInSyncAsync(http, s.Controller, names, ct);

        // 1 and 2, in pairs: a plain consumer reads the device's topic from its start to its end now, then the device is
        // rebuilt, timed by its own record of its replay.
        var pairs = new List<Pair>();
        for (var round = 1; round <= s.Rounds; round++)
        {
            if (round > 1) await WaitInSyncAsync(http, s.Controller, names, ct);
            var raw = ConsumeAll(s.Bootstrap, topic, ct);
            var clock = Stopwatch.StartNew();
            var report = await http.StartRebuildAsync(s.Controller, s.Device, ct);
            while (report.Phase is not ("done" or "failed"))
            {
                await Task.Delay(100, ct);
                report = await http.GetRebuildAsync(s.Controller, s.Device, ct);
            }
            var endToEnd = clock.Elapsed.TotalSeconds;
            if (report.Phase == "failed" || report.Replay is not { CompletedAt: { } replayDone } replay)
                throw new CliException($"the rebuild of {s.Device} failed: {report.Error ?? "no replay recorded"}");
            if (replay.LogTruncated)
                AnsiConsole.MarkupLine("[yellow]the log no longer held its start (the development broker's window): the replay covered only part of it; use fewer or smaller writes[/]");
            var pair = new Pair(round, raw.Messages, raw.Bytes, raw.Seconds, report.Id, replay.Transactions, replay.Bytes, replay.Refused, replay.LogTruncated,
                (replayDone - replay.StartedAt).TotalSeconds, endToEnd, report.Verifies.All(v => v.State == "done" && v.Mismatches.Count == 0));
            pairs.Add(pair);
            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"round {round}: raw consume {raw.Messages} messages, {Mb(raw.Bytes)} MiB in {Sec(raw.Seconds)} s; replay {pair.Transactions} transactions, {Mb(pair.ReplayBytes)} MiB in {Sec(pair.ReplaySeconds)} s: {Rate(pair.Ratio, "0.00")} × the consume"));
        }
        var first = pairs[0];
        var medianRatio = Median(pairs.Select(p => p.Ratio));
        var verifyOk = pairs.All(p => p.VerifiedIdentical);

        // 3. A verify of each volume, one after the other, against cat of both mirrors' object files of all of them.
        double verifySeconds = 0;
        long blocksChecked = 0, mismatches = 0;
        var verifyIds = new List<string>();
        foreach (var name in names)
        {
            var verify = await http.StartVerifyAsync(s.Controller, name, repair: false, rangeBlocks: 256, maxBytesPerSecond: 0, ct);
            while (verify.State == "running")
            {
                await Task.Delay(100, ct);
                verify = await http.GetVerifyAsync(s.Controller, name, ct);
            }
            verifySeconds += ((verify.FinishedAt ?? DateTimeOffset.UtcNow) - verify.StartedAt).TotalSeconds;
            blocksChecked += verify.BlocksChecked;
            mismatches += verify.Mismatches.Count;
            verifyIds.Add(verify.Id);
        }
        var verifyBytes = blocksChecked * BlockSize * Mirrors.Length;
        var files = names.SelectMany(name => Mirrors.Select(d => Path.Combine(s.DataDir, d, $"{name}.{d}.obj"))).ToArray();
        var cat = await CatAsync(files, ct);

        var result = new
        {
            kind = "rebuild",
            startedAt = DateTimeOffset.UtcNow,
            settings = new { device = s.Device, volume = s.Volume, volumes = names, partitions, writes = s.Writes, size = s.Size, concurrency = s.Concurrency, volumeBytes = s.VolumeBytes, rounds = s.Rounds },
            rounds = pairs,
            rebuild = new
            {
                firstRatioToRawConsume = first.Ratio,
                medianRatioToRawConsume = medianRatio,
                medianReplaySeconds = Median(pairs.Select(p => p.ReplaySeconds)),
                medianRawConsumeSeconds = Median(pairs.Select(p => p.RawSeconds)),
                verifiedIdentical = verifyOk,
            },
            verify = new { ids = verifyIds, blocksChecked, bytesRead = verifyBytes, seconds = verifySeconds, mibPerSecond = verifyBytes / 1048576.0 / verifySeconds, mismatches },
            cat = new { files, cat.Bytes, cat.Seconds, mibPerSecond = cat.Bytes / 1048576.0 / cat.Seconds },
            verifyRatioToCat = verifyBytes / verifySeconds / (cat.Bytes / cat.Seconds),
        };
        var outputPath = Path.GetFullPath(s.Output);
        Directory.CreateDirectory(Path.GetDirectoryName(outputPath)!);
        await File.WriteAllTextAsync(outputPath, JsonSerializer.Serialize(result, OutputJson) + "\n", ct);

        var table = new Table().Border(TableBorder.Rounded).Title($"tm bench-rebuild — {total} writes of {s.Size} B to {names.Length} volume(s), rebuild of {s.Device}");
        table.AddColumns("what", "MiB", "seconds", "MiB/s", "× baseline");
        foreach (var p in pairs)
        {
            table.AddRow($"round {p.Round}: raw consume of the topic", Mb(p.RawBytes), Sec(p.RawSeconds), Rate(p.RawMiBs), "1.00");
            table.AddRow($"round {p.Round}: the device's replay{(p.Round == 1 ? " (its first)" : "")}", Mb(p.ReplayBytes), Sec(p.ReplaySeconds), Rate(p.ReplayMiBs), Rate(p.Ratio, "0.00"));
        }
        table.AddRow("cat of both object files", Mb(cat.Bytes), Sec(cat.Seconds), Rate(cat.Bytes / 1048576.0 / cat.Seconds), "1.00");
        table.AddRow(names.Length == 1 ? "verify of the volume" : "verify of the volumes", Mb(verifyBytes), Sec(verifySeconds), Rate(verifyBytes / 1048576.0 / verifySeconds), Rate(result.verifyRatioToCat, "0.00"));
        table.Caption(string.Create(CultureInfo.InvariantCulture,
            $"replay ÷ raw consume: first rebuild {first.Ratio:0.00}, median of {pairs.Count} {medianRatio:0.00}; first rebuild end to end (replay, catch-up, verify) {first.EndToEndSeconds:0.00} s; verified identical: {(verifyOk ? "yes" : "no")}"));
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"results: {Markup.Escape(outputPath)}");
        return verifyOk ? 0 : 1;
    }

    /// <summary>One round: the raw consume and the rebuild after it.</summary>
    private sealed record Pair(
        int Round, long RawMessages, long RawBytes, double RawSeconds, string RebuildId, long Transactions, long ReplayBytes, long Refused,
        bool LogTruncated, double ReplaySeconds, double EndToEndSeconds, bool VerifiedIdentical)
    {
        public double RawMiBs => RawBytes / 1048576.0 / RawSeconds;

        public double ReplayMiBs => ReplayBytes / 1048576.0 / ReplaySeconds;

        public double Ratio => ReplayMiBs / RawMiBs;
    }

    private static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    private static string Mb(long bytes) => (bytes / 1048576.0).ToString("0.00", CultureInfo.InvariantCulture);

    private static string Sec(double s) => s.ToString("0.000", CultureInfo.InvariantCulture);

    private static string Rate(double r, string format = "0.0") => r.ToString(format, CultureInfo.InvariantCulture);

    private static async Task WaitInSyncAsync(TmHttp http, Uri controller, string[] names, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        foreach (var name in names)
        {
            while (true)
            {
                var v = await http.GetVolumeAsync(controller, name, ct) ?? throw new CliException($"volume {name} vanished");
                if (v.Mirrors.All(m => m.State == "InSync" && m.LagMessages == 0 && m.UnappliedBytes == 0)) break;
                if (clock.Elapsed > TimeSpan.FromSeconds(120)) throw new CliException($"volume {name} did not settle within 120 s");
                await Task.Delay(100, ct);
            }
        }
    }

    /// <summary>
    /// <paramref name="count"/> volume names from <paramref name="prefix"/> whose objects on <paramref name="device"/>
    /// (keyed <c>volume.device</c>) the producers' default partitioner (librdkafka's consistent_random: CRC-32 of the
    /// key modulo the partitions) puts in as many different partitions: the prefix itself for one volume.
    /// </summary>
    internal static string[] VolumeNames(string prefix, string device, int count, int partitions)
    {
        if (count == 1) return [prefix];
        if (count > partitions)
            throw new CliException($"--volumes {count} needs a device topic of at least {count} partitions, and tm.device.{device} has {partitions} (start the stack with TM_DEVICE_PARTITIONS={count}, as ops/bench-rebuild.sh does)");
        var names = new List<string>();
        var taken = new HashSet<uint>();
        for (var i = 1; names.Count < count; i++)
        {
            var name = $"{prefix}-{i}";
            if (taken.Add(System.IO.Hashing.Crc32.HashToUInt32(System.Text.Encoding.UTF8.GetBytes($"{name}.{device}")) % (uint)partitions))
                names.Add(name);
        }
        return [.. names];
    }

    private static int PartitionCount(string bootstrap, string topic)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrap }).SetLogHandler((_, _) => { }).Build();
        TopicMetadata? t;
        try
        {
            t = admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics.FirstOrDefault(x => x.Topic == topic);
        }
        catch (KafkaException ex)
        {
            throw new CliException($"{topic}: no answer from the brokers at {bootstrap} ({ex.Error.Reason}); is the stack running?");
        }
        if (t is null || t.Error.IsError || t.Partitions.Count == 0)
            throw new CliException($"{topic}: no such topic on {bootstrap} ({t?.Error.Reason ?? "not in the metadata"}); is the stack running?");
        return t.Partitions.Count;
    }

    /// <summary>Reads every partition of the topic from its start to its end as they are now.</summary>
    private static (long Messages, long Bytes, double Seconds) ConsumeAll(string bootstrap, string topic, CancellationToken ct)
    {
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = "tm-bench-rebuild-" + Guid.NewGuid().ToString("N"),
            EnableAutoCommit = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            // Fetched as the device agents fetch (KafkaSettings.DeviceConsumer): the baseline is the same read without the work.
            FetchWaitMaxMs = 10,
            FetchMaxBytes = 16 * 1024 * 1024,
            MaxPartitionFetchBytes = 4 * 1024 * 1024,
        }).SetLogHandler((_, _) => { }).Build();
        var ends = new Dictionary<int, WatermarkOffsets>();
        var partitions = PartitionCount(bootstrap, topic);
        for (var p = 0; p < partitions; p++)
        {
            var wm = consumer.QueryWatermarkOffsets(new TopicPartition(topic, p), TimeSpan.FromSeconds(10));
            if (wm.High.Value > wm.Low.Value) ends[p] = wm;
        }
        var clock = Stopwatch.StartNew();
        consumer.Assign(ends.Select(e => new TopicPartitionOffset(topic, e.Key, e.Value.Low)));
        long messages = 0, bytes = 0;
        var open = ends.Count;
        while (open > 0 && !ct.IsCancellationRequested)
        {
            var r = consumer.Consume(TimeSpan.FromSeconds(10)) ?? throw new CliException($"{topic}: nothing more to consume before the ends {string.Join(", ", ends.Select(e => $"{e.Key}:{e.Value.High.Value}"))}");
            if (r.Offset.Value >= ends[r.Partition.Value].High.Value) continue;
            messages++;
            bytes += r.Message.Value?.Length ?? 0;
            if (r.Offset.Value + 1 == ends[r.Partition.Value].High.Value) open--;
        }
        return (messages, bytes, clock.Elapsed.TotalSeconds);
    }

    /// <summary><c>cat</c> of the files to /dev/null, as an operator would read them.</summary>
    private static async Task<(long Bytes, double Seconds)> CatAsync(string[] files, CancellationToken ct)
    {
        foreach (var f in files)
        {
            if (!File.Exists(f)) throw new CliException($"{f} does not exist: pass --data-dir where the devices keep their files");
        }
        var clock = Stopwatch.StartNew();
        using var cat = Process.Start(new ProcessStartInfo("sh", ["-c", "cat \"$@\" > /dev/null", "cat", .. files]) { UseShellExecute = false })
            ?? throw new CliException("could not start cat");
        await cat.WaitForExitAsync(ct);
        if (cat.ExitCode != 0) throw new CliException($"cat of {string.Join(" ", files)} failed ({cat.ExitCode})");
        return (files.Sum(f => new FileInfo(f).Length), clock.Elapsed.TotalSeconds);
    }
}
