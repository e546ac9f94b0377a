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

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm bench-nbd</c>: fio through the controller's NBD export of a fresh volume, against two unmirrored NBD servers
/// exporting a plain file (nbdkit's file plugin, nbd-server) and against the product's own HTTP path, all in the same
/// run and one workload at a time across the four, so the ratios hold on a noisy machine. Writes a results JSON and
/// an SVG chart of each target's rate as a ratio of nbdkit's.
/// </summary>
internal static class BenchNbdCommand
{
    private const int BlockSize = 4096;

    private sealed record Workload(string Name, string Rw, int BlockBytes, int Depth)
    {
        public bool Reads => Rw.Contains("read", StringComparison.Ordinal);
    }

    private static readonly Workload[] Workloads =
    [
        new("4k-randwrite-qd1", "randwrite", 4096, 1),
        new("4k-randwrite-qd32", "randwrite", 4096, 32),
        new("64k-write-qd8", "write", 65536, 8),
        new("4k-randread-qd32", "randread", 4096, 32),
    ];

    private sealed record Figure(string Workload, string Target, double Iops, double MiBps, double P50Us, double P99Us, long Operations);

    public static Command Create()
    {
        var controller = CommonOptions.Controller();
        var nbd = new Option<string>("--nbd") { Description = "The controller's NBD server (host:port)", DefaultValueFactory = _ => "127.0.0.1:10809" };
        var runtime = new Option<int>("--runtime") { Description = "Seconds per workload and target", DefaultValueFactory = _ => 10 };
        var region = new Option<int>("--region-mib") { Description = "MiB of each export the workloads use (prefilled before the reads)", DefaultValueFactory = _ => 64 };
        var output = new Option<string?>("--output") { Description = "Result file (default bench-results/nbd-<UTC timestamp>.json; the chart beside it, .svg)" };
        var command = new Command("bench-nbd", "fio through the NBD export against nbdkit file, nbd-server and the HTTP path, same run")
        {
            controller, nbd, runtime, region, output,
        };
        command.SetAction((parse, ct) => Program.RunAsync(() => RunAsync(
            TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"),
            parse.GetValue(nbd)!,
            parse.GetValue(runtime),
            parse.GetValue(region),
            parse.GetValue(output) ?? Path.Combine("bench-results", $"nbd-{DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}.json"),
            ct)));
        return command;
    }

    private static async Task<int> RunAsync(Uri controller, string nbd, int runtime, int regionMib, string output, CancellationToken ct)
    {
        if (runtime < 1) throw new CliException("--runtime must be at least 1 second");
        if (regionMib < 1 || regionMib > 4096) throw new CliException("--region-mib must be from 1 to 4096");
        foreach (var tool in new[] { "fio", "nbdkit", "nbd-server" })
        {
            if (!OnPath(tool)) throw new CliException($"{tool} is not installed (ops/setup.sh installs it)");
        }
        var regionBytes = regionMib * 1024L * 1024;
        using var http = new TmHttp(64, TimeSpan.FromSeconds(60));
        var volume = "nbdbench-" + DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture);
        await http.CreateVolumeAsync(controller, volume, BlockSize, regionBytes / BlockSize, ["d0", "d1"], ct);
        var dir = Directory.CreateTempSubdirectory("tm-bench-nbd-");
        var pidFiles = new List<string>();
        try
        {
            var kitPort = FreePort();
            var serverPort = FreePort();
            var kitFile = Path.Combine(dir.FullName, "nbdkit.img");
            var serverFile = Path.Combine(dir.FullName, "nbd-server.img");
            foreach (var f in new[] { kitFile, serverFile })
            {
                await using var s = File.Create(f);
                s.SetLength(regionBytes);
            }
            var config = Path.Combine(dir.FullName, "nbd-server.conf");
            await File.WriteAllTextAsync(config, $"[generic]\n    listenaddr = 127.0.0.1\n    port = {serverPort}\n    allowlist = true\n[plain]\n    exportname = {serverFile}\n    flush = true\n    fua = true\n    trim = true\n", ct);
            // Both daemonized (pid files, killed at the end), a process per client for nbd-server: run in the
            // foreground as children of this process, nbdkit quit (exit 0) part way through longer runs, and
            // nbd-server -d serves one connection and exits (the readiness probe's).
            var kitPid = Path.Combine(dir.FullName, "nbdkit.pid");
            var serverPid = Path.Combine(dir.FullName, "nbd-server.pid");
            using (var daemon = Start("nbdkit", "-P", kitPid, "-i", "127.0.0.1", "-p", kitPort.ToString(CultureInfo.InvariantCulture), "file", kitFile))
                await daemon.WaitForExitAsync(ct);
            using (var daemon = Start("nbd-server", "-C", config, "-p", serverPid)) await daemon.WaitForExitAsync(ct);
            pidFiles.AddRange([kitPid, serverPid]);
            var targets = new (string Name, string? Uri)[]
            {
                ("TaggedMirror NBD", $"nbd://{nbd}/{volume}"),
                ("nbdkit file", $"nbd://127.0.0.1:{kitPort}/"),
                ("nbd-server", $"nbd://127.0.0.1:{serverPort}/plain"),
                ("TaggedMirror HTTP", null),
            };
            await WaitListeningAsync(kitPort, ct);
            await WaitListeningAsync(serverPort, ct);

            AnsiConsole.MarkupLine($"bench-nbd: volume {volume} ({regionMib} MiB of {BlockSize}-byte blocks on d0, d1), {runtime} s per workload and target; prefilling…");
            foreach (var (_, uri) in targets.Where(t => t.Uri is not null))
                await FioAsync(uri!, new Workload("prefill", "write", 1 << 20, 4), regionBytes, runtime: null, ct);

            var figures = new List<Figure>();
            foreach (var w in Workloads)
            {
                foreach (var (name, uri) in targets)
                {
                    var f = uri is null
                        ? await HttpAsync(http, controller, volume, w, regionBytes, runtime, ct)
                        : await FioAsync(uri, w, regionBytes, runtime, ct) with { Target = name, Workload = w.Name };
                    figures.Add(f);
                    AnsiConsole.MarkupLine($"  {w.Name,-18} {name,-18} {f.Iops,9:N0} IOPS {f.MiBps,8:0.0} MiB/s  p50 {f.P50Us,8:0} µs  p99 {f.P99Us,8:0} µs");
                }
            }

            var table = new Table().Border(TableBorder.Rounded).Title("tm bench-nbd — rate as a ratio of nbdkit file (same run)");
            table.AddColumn("workload");
            foreach (var (name, _) in targets) table.AddColumn(name);
            foreach (var w in Workloads)
            {
                var kit = figures.Single(f => f.Workload == w.Name && f.Target == "nbdkit file").Iops;
                table.AddRow([w.Name, .. targets.Select(t => figures.Single(f => f.Workload == w.Name && f.Target == t.Name)).Select(f => $"{f.Iops:N0} IOPS ({f.Iops / kit:0.00}×), p50 {f.P50Us:0} µs")]);
            }
            AnsiConsole.Write(table);

            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
            var result = new
            {
                kind = "nbd",
                timestamp = DateTimeOffset.UtcNow,
                machine = new { cores = Environment.ProcessorCount, cpu = BenchCommand.CpuModel(), os = RuntimeInformation.OSDescription, runtime = RuntimeInformation.FrameworkDescription },
                git = BenchCommand.Git("rev-parse", "HEAD"),
                gitDirty = BenchCommand.Git("status", "--porcelain", "--untracked-files=no") is { Length: > 0 },
                parameters = new { controller = controller.ToString(), nbd, volume, blockSize = BlockSize, regionBytes, runtimeSeconds = runtime, fio = Version("fio", "--version"), mirrors = 2 },
                figures,
                ratiosToNbdkit = Workloads.Select(w => new
                {
                    workload = w.Name,
                    ratios = targets.ToDictionary(t => t.Name, t => figures.Single(f => f.Workload == w.Name && f.Target == t.Name).Iops / figures.Single(f => f.Workload == w.Name && f.Target == "nbdkit file").Iops),
                }),
            };
            await File.WriteAllTextAsync(output, JsonSerializer.Serialize(result, new JsonSerializerOptions(JsonSerializerOptions.Web) { WriteIndented = true }), ct);
            var chart = Path.ChangeExtension(output, ".svg");
            await File.WriteAllTextAsync(chart, Chart(figures, [.. targets.Select(t => t.Name)]), ct);
            AnsiConsole.MarkupLine($"results: {Markup.Escape(output)}, chart: {Markup.Escape(chart)}");
            return 0;
        }
        finally
        {
            foreach (var file in pidFiles.Where(File.Exists))
            {
                if (!int.TryParse(File.ReadAllText(file).Trim(), CultureInfo.InvariantCulture, out var pid)) continue;
                try
                {
                    using var daemon = Process.GetProcessById(pid);
                    daemon.Kill(entireProcessTree: true);
                }
                catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
                {
                }
            }
            dir.Delete(recursive: true);
        }
    }

    private static async Task<Figure> FioAsync(string uri, Workload w, long regionBytes, int? runtime, CancellationToken ct)
    {
        var args = new List<string>
        {
            "--name=bench", "--ioengine=nbd", $"--uri={uri}", $"--rw={w.Rw}", $"--bs={w.BlockBytes}", $"--iodepth={w.Depth}",
            $"--size={regionBytes}", "--output-format=json", "--randrepeat=0", "--norandommap",
        };
        if (runtime is { } seconds) args.AddRange(["--time_based", $"--runtime={seconds}", "--ramp_time=1"]);
        var start = new ProcessStartInfo("fio") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start) ?? throw new CliException("could not start fio");
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        var text = await stdout;
        if (p.ExitCode != 0 || text.IndexOf('{', StringComparison.Ordinal) is var at && at < 0)
            throw new CliException($"fio against {uri} ({w.Name}) failed, exit {p.ExitCode}: {await stderr}\npeers said:\n{PeerLog()}");
        using var doc = JsonDocument.Parse(text[at..]);
        var side = doc.RootElement.GetProperty("jobs")[0].GetProperty(w.Reads ? "read" : "write");
        var percentiles = side.GetProperty("clat_ns").TryGetProperty("percentile", out var pct) ? pct : default;
        double Percentile(string key) => percentiles.ValueKind == JsonValueKind.Object && percentiles.TryGetProperty(key, out var v) ? v.GetDouble() / 1000 : 0;
        return new Figure(w.Name, uri, side.GetProperty("iops").GetDouble(), side.GetProperty("bw").GetDouble() / 1024,
            Percentile("50.000000"), Percentile("99.000000"), side.GetProperty("total_ios").GetInt64());
    }

    /// <summary>The same workload through the HTTP API: <see cref="Workload.Depth"/> requests in flight, for the same time, on the same volume.</summary>
    private static async Task<Figure> HttpAsync(TmHttp http, Uri controller, string volume, Workload w, long regionBytes, int runtime, CancellationToken ct)
    {
        var blocksPerOp = w.BlockBytes / BlockSize;
        var opsInRegion = regionBytes / w.BlockBytes;
        var latencies = new List<double>[w.Depth];
        var deadline = Stopwatch.GetTimestamp() + (long)((runtime + 1) * (double)Stopwatch.Frequency);
        var measureFrom = Stopwatch.GetTimestamp() + Stopwatch.Frequency;   // one second of ramp, as fio's
        long sequential = -1;
        async Task WorkerAsync(int worker)
        {
            var random = new Random(worker);
            var data = new byte[w.BlockBytes];
            random.NextBytes(data);
            var mine = latencies[worker] = [];
            while (Stopwatch.GetTimestamp() < deadline)
            {
                var op = w.Rw.StartsWith("rand", StringComparison.Ordinal) ? random.NextInt64(opsInRegion) : Interlocked.Increment(ref sequential) % opsInRegion;
                var t0 = Stopwatch.GetTimestamp();
                if (w.Reads) await http.ReadBlocksAsync(controller, volume, op * blocksPerOp, blocksPerOp, ct);
                else await http.WriteAsync(controller, volume, op * blocksPerOp, data, waitApplied: false, ct);
                if (t0 >= measureFrom) mine.Add(Stopwatch.GetElapsedTime(t0).TotalMicroseconds);
            }
        }
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, w.Depth).Select(WorkerAsync));
        var measured = Math.Max(0.001, clock.Elapsed.TotalSeconds - 1);
        var all = latencies.SelectMany(l => l).Order().ToArray();
        double Percentile(double q) => all.Length == 0 ? 0 : all[Math.Min(all.Length - 1, (int)(q * all.Length))];
        return new Figure(w.Name, "TaggedMirror HTTP", all.Length / measured, all.Length * (double)w.BlockBytes / measured / 1024 / 1024, Percentile(0.5), Percentile(0.99), all.Length);
    }

    /// <summary>Grouped bars: each target's rate per workload as a ratio of nbdkit file's (log scale), with the figure on each bar.</summary>
    private static string Chart(List<Figure> figures, string[] targets)
    {
        string[] colors = ["#1f77b4", "#7f7f7f", "#bcbd22", "#ff7f0e"];
        const int Width = 900, Height = 420, Left = 70, Bottom = 60, Top = 40;
        var plotHeight = Height - Bottom - Top;
        var groupWidth = (Width - Left - 20) / Workloads.Length;
        var barWidth = (groupWidth - 30) / targets.Length;
        double Y(double ratio) => Top + plotHeight * (1 - (Math.Log10(Math.Clamp(ratio, 0.001, 10)) + 3) / 4);   // 0.001× to 10×
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" font-family=\"sans-serif\" font-size=\"11\">\n");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Width / 2}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">IOPS as a ratio of nbdkit file (same run, log scale)</text>\n");
        foreach (var tick in new[] { 0.001, 0.01, 0.1, 1, 10 })
        {
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" x2=\"{Width - 20}\" y1=\"{Y(tick):0}\" y2=\"{Y(tick):0}\" stroke=\"#ddd\"/><text x=\"{Left - 6}\" y=\"{Y(tick) + 4:0}\" text-anchor=\"end\">{tick}×</text>\n");
        }
        for (var g = 0; g < Workloads.Length; g++)
        {
            var w = Workloads[g];
            var kit = figures.Single(f => f.Workload == w.Name && f.Target == "nbdkit file").Iops;
            var x0 = Left + g * groupWidth + 15;
            for (var t = 0; t < targets.Length; t++)
            {
                var f = figures.Single(f => f.Workload == w.Name && f.Target == targets[t]);
                var ratio = kit > 0 ? f.Iops / kit : 0;
                var y = Y(ratio);
                svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{x0 + t * barWidth}\" y=\"{y:0}\" width=\"{barWidth - 4}\" height=\"{Top + plotHeight - y:0}\" fill=\"{colors[t % colors.Length]}\"/>");
                svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x0 + t * barWidth + (barWidth - 4) / 2}\" y=\"{y - 3:0}\" text-anchor=\"middle\" font-size=\"9\">{f.Iops:0}</text>\n");
            }
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x0 + (groupWidth - 30) / 2}\" y=\"{Height - Bottom + 16}\" text-anchor=\"middle\">{w.Name}</text>\n");
        }
        for (var t = 0; t < targets.Length; t++)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{Left + t * 200}\" y=\"{Height - 22}\" width=\"12\" height=\"12\" fill=\"{colors[t % colors.Length]}\"/><text x=\"{Left + t * 200 + 16}\" y=\"{Height - 12}\">{targets[t]}</text>\n");
        }
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    // What the peers said (a peer that died says why here).
    private static readonly string PeerLogFile = Path.Combine(Path.GetTempPath(), $"tm-bench-nbd-peers-{Environment.ProcessId}.log");

    private static string PeerLog() => File.Exists(PeerLogFile) ? string.Join("\n", File.ReadLines(PeerLogFile).TakeLast(20)) : "";

    private static Process Start(string file, params string[] args)
    {
        // Output goes to a file, not a pipe: a peer writing to a pipe this process no longer drains would die of it.
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("exec \"$0\" \"$@\" >>\"$TM_PEER_LOG\" 2>&1 </dev/null");
        start.ArgumentList.Add(file);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["TM_PEER_LOG"] = PeerLogFile;
        return Process.Start(start) ?? throw new CliException($"could not start {file}");
    }

    private static async Task WaitListeningAsync(int port, CancellationToken ct)
    {
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port, ct);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100, ct);
            }
        }
        throw new CliException($"nothing listens on 127.0.0.1:{port} after 10 s");
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, tool)));

    private static string? Version(string file, string arg)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(file, arg) { RedirectStandardOutput = true });
            var text = p!.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return text;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
