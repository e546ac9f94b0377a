using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Npgsql;
using Spectre.Console;
using TaggedMirror.Cli.Api;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm bench</c>: write throughput and latency through the controller's API, the same load produced straight to the
/// broker as a baseline, and peak memory of every process. Figures go to a JSON file; nothing is asserted.
/// </summary>
internal static class BenchCommand
{
    private const int BlockSize = 4096;
    private const long BenchVolumeBytes = 1L << 30;
    private static readonly string[] Mirrors = ["d0", "d1"];
    private static readonly JsonSerializerOptions OutputJson = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static Command Create()
    {
        var controller = CommonOptions.Controller();
        var agents = CommonOptions.Agents();
        var volume = CommonOptions.Volume("bench");
        var writes = new Option<int>("--writes") { Description = "Measured writes (and raw messages)", DefaultValueFactory = _ => 2000 };
        var size = new Option<int>("--size") { Description = "Bytes per write: a multiple of 4096", DefaultValueFactory = _ => 4096 };
        var concurrency = new Option<int>("--concurrency") { Description = "Writes kept in flight", DefaultValueFactory = _ => 16 };
        var warmup = new Option<int>("--warmup") { Description = "Unmeasured writes (and messages) before each measurement", DefaultValueFactory = _ => 100 };
        var output = new Option<string?>("--output") { Description = "Result file (default bench-results/write-<UTC timestamp>.json)" };
        var kafka = new Option<string?>("--kafka") { Description = "Bootstrap servers for the raw baseline (default: TaggedMirror__Kafka, else .run/kafka.bootstrap)" };
        var noRaw = new Option<bool>("--no-raw") { Description = "Skip the raw Kafka baseline" };
        var postgres = new Option<string?>("--postgres") { Description = "Npgsql connection string, to count each process's PostgreSQL backends (default: TaggedMirror__Postgres, else the local stack's)" };
        var command = new Command("bench", "Measure writes through the controller against raw Kafka produce, and peak memory")
        {
            controller, writes, size, concurrency, volume, output, kafka, agents, warmup, noRaw, postgres,
        };
        command.SetAction((parse, ct) => Program.RunAsync(() => RunAsync(new Settings(
            TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"),
            CommonOptions.CheckVolumeName(parse.GetValue(volume)!),
            parse.GetValue(writes),
            parse.GetValue(size),
            parse.GetValue(concurrency),
            parse.GetValue(warmup),
            parse.GetValue(output) ?? Path.Combine("bench-results", $"write-{DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}.json"),
            parse.GetValue(noRaw) ? null : parse.GetValue(kafka),
            parse.GetValue(noRaw),
            CommonOptions.ParseAgents(parse.GetValue(agents)!),
            parse.GetValue(postgres) ?? Environment.GetEnvironmentVariable("TaggedMirror__Postgres") ?? CommonOptions.DefaultPostgres), ct)));
        return command;
    }

    private sealed record Settings(Uri Controller, string Volume, int Writes, int Size, int Concurrency, int Warmup, string Output,
        string? Kafka, bool NoRaw, Uri[] Agents, string Postgres);

    private static async Task<int> RunAsync(Settings s, CancellationToken ct)
    {
        if (s.Writes < 1) throw new CliException("--writes must be at least 1");
        if (s.Size < BlockSize || s.Size % BlockSize != 0) throw new CliException($"--size must be a positive multiple of {BlockSize}");
        if (s.Concurrency < 1) throw new CliException("--concurrency must be at least 1");
        if (s.Warmup < 0) throw new CliException("--warmup must not be negative");
        var bootstrap = s.NoRaw ? null : ResolveBootstrap(s.Kafka);

        using var http = new TmHttp(s.Concurrency + 4, TimeSpan.FromSeconds(60));
        var controllerInfo = await http.GetControllerAsync(s.Controller, ct);
        await http.CreateVolumeAsync(s.Controller, s.Volume, BlockSize, BenchVolumeBytes / BlockSize, Mirrors, ct);
        var volume = await http.GetVolumeAsync(s.Controller, s.Volume, ct) ?? throw new CliException($"volume {s.Volume} vanished right after it was created");
        if (s.Size % volume.BlockSize != 0) throw new CliException($"--size {s.Size} is not a whole number of volume {s.Volume}'s {volume.BlockSize}-byte blocks");
        var blocksPerWrite = s.Size / volume.BlockSize;
        if (volume.Blocks < blocksPerWrite) throw new CliException($"volume {s.Volume} is smaller than one write");

        // Offsets, URIs and the payload are made before the clock starts.
        var rng = new Random(12345);
        var total = s.Warmup + s.Writes;
        var uris = new Uri[total];
        for (var i = 0; i < total; i++)
        {
            var first = rng.NextInt64(0, (volume.Blocks / blocksPerWrite)) * blocksPerWrite;
            uris[i] = new Uri(s.Controller, $"volumes/{Uri.EscapeDataString(s.Volume)}/blocks/{first}");
        }
        var payload = new byte[s.Size];
        rng.NextBytes(payload);

        AnsiConsole.MarkupLine($"bench: {s.Writes} writes of {s.Size} bytes at concurrency {s.Concurrency} to volume [bold]{s.Volume}[/] ({volume.Blocks} blocks on {string.Join(", ", volume.Mirrors.Select(m => m.DeviceId))})");
        var warmupTicks = new long[Math.Max(1, s.Warmup)];
        if (s.Warmup > 0)
            await ClosedLoop.RunAsync(s.Warmup, s.Concurrency, warmupTicks, (i, token) => http.WriteUncheckedBodyAsync(uris[i], payload, token), ct);
        await WaitAppliedAsync(http, s, TimeSpan.FromSeconds(60), ct);

        var apiTicks = new long[s.Writes];
        var servicesBefore = await ServicesAsync(http, s, ct);
        await using var db = NpgsqlDataSource.Create(s.Postgres);
        var cpu = new CpuAccounting(servicesBefore, db);
        var cpuBefore = await cpu.TakeAsync(ct);
        var tagsBefore = (await http.GetControllerAsync(s.Controller, ct)).TagsIssued;
        var apiSeconds = await ClosedLoop.RunAsync(s.Writes, s.Concurrency, apiTicks,
            (i, token) => http.WriteUncheckedBodyAsync(uris[s.Warmup + i], payload, token), ct);
        // Acknowledged means "in the log on every mirror"; how long the devices take to apply it is worth knowing too.
        var applied = await WaitAppliedAsync(http, s, TimeSpan.FromSeconds(120), ct);
        // The devices' work for these writes ends when they have applied them: the CPU is counted up to here.
        var cpuUsed = CpuAccounting.Between(cpuBefore, await cpu.TakeAsync(ct));
        var servicesAfter = await ServicesAsync(http, s, ct);
        var perWrite = PerWrite(cpuUsed, servicesBefore, servicesAfter, s.Writes);
        var tagsAfter = (await http.GetControllerAsync(s.Controller, ct)).TagsIssued;
        var api = LatencySummary.FromTicks(apiTicks);
        AnsiConsole.MarkupLine($"api: {s.Writes / apiSeconds:0} writes/s, p50 {api.P50Ms} ms, p99 {api.P99Ms} ms; all applied {applied.TotalSeconds:0.00} s after the last acknowledgement");

        object? raw = null;
        LatencySummary? rawSummary = null;
        double rawSeconds = 0;
        if (bootstrap is not null)
        {
            AnsiConsole.MarkupLine($"raw: {s.Writes} messages of {s.Size} bytes at concurrency {s.Concurrency} to {RawKafkaBench.Topic} on {Markup.Escape(bootstrap)}");
            // The produce's own CPU, the same way as the API's: what the two produces of a mirrored write cost this
            // machine (client, broker, kernel) bounds the mirrored write rate before the stack does any work of its own.
            var rawCpu = new CpuAccounting(new Dictionary<string, ProcessDiagnostics?>(StringComparer.Ordinal), null);
            CpuAccounting.Snapshot? rawCpuBefore = null;
            (rawSeconds, var rawTicks) = await RawKafkaBench.RunAsync(bootstrap, s.Writes, s.Size, s.Concurrency, s.Warmup,
                async () => rawCpuBefore = await rawCpu.TakeAsync(ct), ct);
            var rawCpuUsed = CpuAccounting.Between(rawCpuBefore!, await rawCpu.TakeAsync(ct));
            rawSummary = LatencySummary.FromTicks(rawTicks);
            var rawMachine = rawCpuUsed.GetValueOrDefault("machine (all cores)") * 1e6 / s.Writes;
            double? ceiling = rawMachine > 0 ? Environment.ProcessorCount * 1e6 / (volume.Mirrors.Length * rawMachine) : null;
            raw = new
            {
                topic = RawKafkaBench.Topic,
                bootstrap,
                messages = s.Writes,
                seconds = rawSeconds,
                messagesPerSecond = s.Writes / rawSeconds,
                mibPerSecond = (double)s.Writes * s.Size / rawSeconds / (1024 * 1024),
                latency = rawSummary,
                // Process CPU time over the measured messages, ÷ messages; and the mirrored writes per second this machine
                // could carry if each cost only its produces (cores ÷ (mirrors × machine CPU per message)).
                cpu = new
                {
                    seconds = rawCpuUsed,
                    perMessageMicroseconds = rawCpuUsed.ToDictionary(kv => kv.Key, kv => kv.Value * 1e6 / s.Writes, StringComparer.Ordinal),
                    producesOnlyCeilingWritesPerSecond = ceiling,
                },
            };
            AnsiConsole.MarkupLine($"raw: machine CPU {rawMachine:0} µs per message; with nothing but its {volume.Mirrors.Length} produces a mirrored write could go at most {ceiling ?? 0:0}/s here");
        }

        var memory = await ServicesAsync(http, s, ct);
        using (var self = Process.GetCurrentProcess())
            memory["tm-bench"] = new ProcessDiagnostics(Environment.ProcessId, self.PeakWorkingSet64, self.WorkingSet64, GC.GetTotalAllocatedBytes());

        var result = new
        {
            kind = "write",
            timestamp = DateTimeOffset.UtcNow,
            machine = new
            {
                cores = Environment.ProcessorCount,
                cpu = CpuModel(),
                memoryBytes = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes,
                os = RuntimeInformation.OSDescription,
                runtime = RuntimeInformation.FrameworkDescription,
                host = Environment.MachineName,
            },
            git = Git("rev-parse", "HEAD"),
            gitDirty = Git("status", "--porcelain", "--untracked-files=no") is { Length: > 0 },
            parameters = new
            {
                controller = s.Controller.ToString(),
                volume = s.Volume,
                volumeBlocks = volume.Blocks,
                blockSize = volume.BlockSize,
                mirrors = volume.Mirrors.Length,
                writes = s.Writes,
                size = s.Size,
                concurrency = s.Concurrency,
                warmup = s.Warmup,
                controllerId = controllerInfo.ControllerId,
                epoch = controllerInfo.Epoch,
                maxLagBytes = Environment.GetEnvironmentVariable("Controller__MaxLagBytes"),
                // Set in this process when ops/bench.sh --tracing started the stack with an exporter.
                tracing = Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT") is { Length: > 0 } otlp
                    ? new { endpoint = otlp, protocol = Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_PROTOCOL") ?? "grpc" }
                    : null,
            },
            api = new
            {
                writes = s.Writes,
                seconds = apiSeconds,
                writesPerSecond = s.Writes / apiSeconds,
                mibPerSecond = (double)s.Writes * s.Size / apiSeconds / (1024 * 1024),
                latency = api,
                tagsIssued = tagsAfter - tagsBefore,
                appliedAfterLastAckSeconds = applied.TotalSeconds,
            },
            rawKafka = raw,
            // Process CPU time over the measured writes and until every mirror applied them, ÷ writes.
            cpu = new { seconds = cpuUsed, perWrite },
            peakMemory = memory,
        };
        var outputPath = Path.GetFullPath(s.Output);
        Directory.CreateDirectory(Path.GetDirectoryName(outputPath)!);
        await File.WriteAllTextAsync(outputPath, JsonSerializer.Serialize(result, OutputJson) + "\n", ct);

        var table = new Table().Border(TableBorder.Rounded).Title($"tm bench — {s.Writes} × {s.Size} B, concurrency {s.Concurrency}");
        table.AddColumns("", "ops/s", "MiB/s", "p50 ms", "p99 ms", "max ms");
        table.AddRow("API write (2 mirrors)", F0(s.Writes / apiSeconds), F1((double)s.Writes * s.Size / apiSeconds / (1024 * 1024)), F2(api.P50Ms), F2(api.P99Ms), F2(api.MaxMs));
        if (rawSummary is not null)
            table.AddRow("raw Kafka produce", F0(s.Writes / rawSeconds), F1((double)s.Writes * s.Size / rawSeconds / (1024 * 1024)), F2(rawSummary.P50Ms), F2(rawSummary.P99Ms), F2(rawSummary.MaxMs));
        AnsiConsole.Write(table);
        var mem = new Table().Border(TableBorder.Rounded).Title("peak working set");
        mem.AddColumns("process", "pid", "peak MiB");
        foreach (var (name, p) in memory)
            mem.AddRow(Markup.Escape(name), p?.Pid.ToString(CultureInfo.InvariantCulture) ?? "?", p is null ? "unreachable" : F1(p.PeakWorkingSetBytes / (1024.0 * 1024)));
        AnsiConsole.Write(mem);
        var cpuTable = new Table().Border(TableBorder.Rounded).Title("CPU per write (until applied)");
        cpuTable.AddColumns("process", "CPU s", "µs per write", "allocated per write");
        foreach (var (name, seconds) in cpuUsed.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var allocated = perWrite.TryGetValue(name, out var w) && w.AllocatedBytes is { } a ? $"{a / 1024.0:0.0} KiB" : "";
            cpuTable.AddRow(Markup.Escape(name), F2(seconds), F0(seconds * 1e6 / s.Writes), allocated);
        }
        foreach (var (name, w) in perWrite.Where(kv => kv.Value.WithPostgresMicroseconds is not null))
            cpuTable.AddRow(Markup.Escape(name + " with its postgresql"), "", F0(w.WithPostgresMicroseconds!.Value), "");
        AnsiConsole.Write(cpuTable);
        AnsiConsole.MarkupLine($"results: {Markup.Escape(outputPath)}");
        return 0;
    }

    /// <summary>Per service: CPU µs per write alone and with its PostgreSQL backends, managed bytes allocated per write, collections.</summary>
    internal sealed record WriteCost(double Microseconds, double? WithPostgresMicroseconds, double? AllocatedBytes, int? Gen0, int? Gen1, int? Gen2);

    private static Dictionary<string, WriteCost> PerWrite(Dictionary<string, double> used,
        Dictionary<string, ProcessDiagnostics?> before, Dictionary<string, ProcessDiagnostics?> after, int writes)
    {
        var costs = new Dictionary<string, WriteCost>(StringComparer.Ordinal);
        foreach (var (name, b) in before)
        {
            if (!used.TryGetValue(name, out var seconds)) continue;
            var a = after.GetValueOrDefault(name);
            var same = b is not null && a is not null && a.Pid == b.Pid;
            double? withPostgres = used.TryGetValue(name + " postgresql", out var pg) ? (seconds + pg) * 1e6 / writes : null;
            costs[name] = new WriteCost(seconds * 1e6 / writes, withPostgres,
                same ? (double)(a!.TotalAllocatedBytes - b!.TotalAllocatedBytes) / writes : null,
                same ? a!.Gen0Collections - b!.Gen0Collections : null,
                same ? a!.Gen1Collections - b!.Gen1Collections : null,
                same ? a!.Gen2Collections - b!.Gen2Collections : null);
        }
        return costs;
    }

    /// <summary>The controller's and every agent's <c>/diag/process</c>, named <c>controller</c> and <c>agent-&lt;device&gt;</c>.</summary>
    private static async Task<Dictionary<string, ProcessDiagnostics?>> ServicesAsync(TmHttp http, Settings s, CancellationToken ct)
    {
        var services = new Dictionary<string, ProcessDiagnostics?>(StringComparer.Ordinal) { ["controller"] = await TryProcessAsync(http, s.Controller, ct) };
        foreach (var agent in s.Agents)
        {
            var status = await TryAgentAsync(http, agent, ct);
            services["agent-" + (status?.DeviceId ?? agent.Authority)] = await TryProcessAsync(http, agent, ct);
        }
        return services;
    }

    internal static string ResolveBootstrap(string? option)
    {
        if (!string.IsNullOrWhiteSpace(option)) return option;
        var env = Environment.GetEnvironmentVariable("TaggedMirror__Kafka");
        if (!string.IsNullOrWhiteSpace(env)) return env;
        const string file = ".run/kafka.bootstrap";
        if (File.Exists(file) && File.ReadAllText(file).Trim() is { Length: > 0 } text) return text;
        throw new CliException($"no Kafka bootstrap servers for the raw baseline: pass --kafka, or run from the repository root with the stack running ({Path.GetFullPath(file)} is missing), or pass --no-raw");
    }

    /// <summary>Waits until every mirror has applied everything sent to it; returns how long that took.</summary>
    private static async Task<TimeSpan> WaitAppliedAsync(TmHttp http, Settings s, TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var v = await http.GetVolumeAsync(s.Controller, s.Volume, ct) ?? throw new CliException($"volume {s.Volume} vanished");
            if (v.Mirrors.All(m => m.LagMessages == 0 && m.UnappliedBytes == 0)) return clock.Elapsed;
            if (clock.Elapsed > timeout)
            {
                throw new CliException($"mirrors did not apply the benchmark's writes within {timeout.TotalSeconds:0} s: " +
                    string.Join(", ", v.Mirrors.Select(m => $"{m.DeviceId} {m.State} {m.LagMessages} messages behind, {m.UnappliedBytes} bytes unapplied")));
            }

            await Task.Delay(20, ct);
        }
    }

    private static async Task<ProcessDiagnostics?> TryProcessAsync(TmHttp http, Uri service, CancellationToken ct)
    {
        try
        {
            return await http.GetProcessAsync(service, ct);
        }
        catch (CliException ex)
        {
            AnsiConsole.MarkupLine($"[yellow]warning:[/] no memory figures from {Markup.Escape(service.ToString())}: {Markup.Escape(ex.Message)}");
            return null;
        }
    }

    private static async Task<DeviceStatusAnswer?> TryAgentAsync(TmHttp http, Uri agent, CancellationToken ct)
    {
        try
        {
            return await http.GetAgentStatusAsync(agent, ct);
        }
        catch (CliException)
        {
            return null;
        }
    }

    internal static string? CpuModel()
    {
        try
        {
            return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }

    internal static string? Git(params string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo("git") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi);
            if (p is null) return null;
            var text = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 ? text : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    private static string F0(double v) => v.ToString("0", CultureInfo.InvariantCulture);

    private static string F1(double v) => v.ToString("0.0", CultureInfo.InvariantCulture);

    private static string F2(double v) => v.ToString("0.00", CultureInfo.InvariantCulture);
}
