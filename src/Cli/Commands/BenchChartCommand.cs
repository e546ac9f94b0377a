using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm bench-chart</c>: reads the result files of write sweeps (<c>ops/bench-sweep.sh</c>: one directory per sweep, a
/// <c>tm bench</c> file per workload, named <c>&lt;size&gt;-c&lt;in flight&gt;.json</c>) and writes a markdown table
/// of the same-run ratios and CPU per write, and an SVG chart of throughput and p50 against the number in flight, for
/// the API and the raw produce. Several directories (before, after) go into one table and one chart.
/// </summary>
internal static class BenchChartCommand
{
    public static Command Create()
    {
        var dirs = new Argument<string[]>("sweeps") { Description = "Sweep directories (bench-results/sweep-*), each labelled by its 'label' file or its name", Arity = ArgumentArity.OneOrMore };
        var svg = new Option<string?>("--svg") { Description = "Chart file to write (SVG)" };
        var markdown = new Option<string?>("--markdown") { Description = "Table file to write (markdown); the table is printed too" };
        var command = new Command("bench-chart", "Table and chart of write sweeps: API against raw produce, per number in flight") { dirs, svg, markdown };
        command.SetAction((parse, ct) => Program.RunAsync(() => RunAsync(parse.GetValue(dirs)!, parse.GetValue(svg), parse.GetValue(markdown), ct)));
        return command;
    }

    internal sealed record Point(string Label, string Workload, int Size, int InFlight, double ApiRate, double RawRate, int Mirrors,
        double ApiP50, double RawP50, double ApiMiBps, double RawMiBps, double AppliedAfter, IReadOnlyDictionary<string, double> CpuMicroseconds,
        IReadOnlyDictionary<string, double> PeakMiB, double? RawMachineMicroseconds = null, double? ProducesOnlyCeiling = null);

    private static async Task<int> RunAsync(string[] dirs, string? svg, string? markdown, CancellationToken ct)
    {
        var points = new List<Point>();
        foreach (var dir in dirs)
        {
            if (!Directory.Exists(dir)) throw new CliException($"{dir} is not a directory of sweep results");
            var labelFile = Path.Combine(dir, "label");
            var label = File.Exists(labelFile) ? (await File.ReadAllTextAsync(labelFile, ct)).Trim() : Path.GetFileName(Path.TrimEndingDirectorySeparator(dir));
            var files = Directory.GetFiles(dir, "*-c*.json").Order(StringComparer.Ordinal).ToArray();
            if (files.Length == 0) throw new CliException($"{dir} holds no <size>-c<in flight>.json result files");
            foreach (var file in files)
                points.Add(Read(label, file, JsonDocument.Parse(await File.ReadAllTextAsync(file, ct)).RootElement));
        }

        // Workload by workload, the sweeps side by side in the order given.
        var order = points.Select(p => p.Label).Distinct().ToList();
        points = [.. points.OrderBy(p => p.Size).ThenBy(p => p.InFlight).ThenBy(p => order.IndexOf(p.Label))];
        var table = Table(points);
        Console.Write(table);
        if (markdown is not null) await File.WriteAllTextAsync(markdown, table, ct);
        if (svg is not null)
        {
            await File.WriteAllTextAsync(svg, Chart(points.Where(p => p.Size == 4096).ToList()), ct);
            Console.WriteLine($"chart: {Path.GetFullPath(svg)}");
        }
        return 0;
    }

    internal static Point Read(string label, string file, JsonElement r)
    {
        try
        {
            var p = r.GetProperty("parameters");
            var api = r.GetProperty("api");
            var raw = r.GetProperty("rawKafka");
            if (raw.ValueKind != JsonValueKind.Object) throw new CliException($"{file} has no raw baseline (run without --no-raw)");
            var cpu = new Dictionary<string, double>(StringComparer.Ordinal);
            if (r.TryGetProperty("cpu", out var c) && c.ValueKind == JsonValueKind.Object)
            {
                var writes = api.GetProperty("writes").GetDouble();
                foreach (var s in c.GetProperty("seconds").EnumerateObject())
                    cpu[s.Name] = s.Value.GetDouble() * 1e6 / writes;
            }
            var peak = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var m in r.GetProperty("peakMemory").EnumerateObject())
                if (m.Value.ValueKind == JsonValueKind.Object) peak[m.Name] = m.Value.GetProperty("peakWorkingSetBytes").GetDouble() / (1024 * 1024);
            double? rawMachine = null, ceiling = null;
            if (raw.TryGetProperty("cpu", out var rc) && rc.ValueKind == JsonValueKind.Object)
            {
                if (rc.GetProperty("perMessageMicroseconds").TryGetProperty("machine (all cores)", out var m)) rawMachine = m.GetDouble();
                if (rc.GetProperty("producesOnlyCeilingWritesPerSecond") is { ValueKind: JsonValueKind.Number } cw) ceiling = cw.GetDouble();
            }
            return new Point(label, Path.GetFileNameWithoutExtension(file), p.GetProperty("size").GetInt32(), p.GetProperty("concurrency").GetInt32(),
                api.GetProperty("writesPerSecond").GetDouble(), raw.GetProperty("messagesPerSecond").GetDouble(), p.GetProperty("mirrors").GetInt32(),
                api.GetProperty("latency").GetProperty("p50Ms").GetDouble(), raw.GetProperty("latency").GetProperty("p50Ms").GetDouble(),
                api.GetProperty("mibPerSecond").GetDouble(), raw.GetProperty("mibPerSecond").GetDouble(),
                api.GetProperty("appliedAfterLastAckSeconds").GetDouble(), cpu, peak, rawMachine, ceiling);
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new CliException($"{file} is not a tm bench result file: {ex.Message}");
        }
    }

    internal static string Table(IEnumerable<Point> points)
    {
        var md = new StringBuilder();
        md.AppendLine("| run | workload | API writes/s | raw msgs/s | API ÷ (raw ÷ mirrors) | API p50 ms | raw p50 ms | p50 API ÷ raw | CPU µs/write: controller (+ its PostgreSQL) | agents (+ their PostgreSQL) | machine | applied after last ack s | peak MiB controller / agents | client | raw: machine µs/msg | writes/s if a write cost only its produces |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var p in points)
        {
            string Cpu(string name) => p.CpuMicroseconds.TryGetValue(name, out var v) ? F0(v) : "?";
            var agents = p.CpuMicroseconds.Keys.Where(k => k.StartsWith("agent-", StringComparison.Ordinal) && !k.EndsWith(" postgresql", StringComparison.Ordinal)).Order(StringComparer.Ordinal);
            var agentCpu = string.Join(" / ", agents.Select(a => $"{Cpu(a)} (+{Cpu(a + " postgresql")})"));
            var peaks = string.Join(" / ", p.PeakMiB.Where(kv => kv.Key != "tm-bench").OrderBy(kv => kv.Key == "controller" ? "" : kv.Key, StringComparer.Ordinal).Select(kv => F0(kv.Value)));
            md.Append(CultureInfo.InvariantCulture,
                $"| {p.Label} | {p.Size / 1024} KiB, {p.InFlight} in flight | {Rate(p, p.ApiRate, p.ApiMiBps)} | {Rate(p, p.RawRate, p.RawMiBps)} | {p.ApiRate / (p.RawRate / p.Mirrors):0.00} | {p.ApiP50:0.0} | {p.RawP50:0.0} | {p.ApiP50 / p.RawP50:0.0} | {Cpu("controller")} (+{Cpu("controller postgresql")}) | {agentCpu} | {Cpu("machine (all cores)")} | {p.AppliedAfter:0.00} | {peaks} | {Cpu("tm-bench")} | {Opt(p.RawMachineMicroseconds)} | {Opt(p.ProducesOnlyCeiling)} |\n");
        }
        return md.ToString();
    }

    private static string Opt(double? v) => v is { } x ? F0(x) : "?";

    private static string Rate(Point p, double rate, double mibps) =>
        p.Size > 4096 ? string.Create(CultureInfo.InvariantCulture, $"{rate:0} ({mibps:0.0} MiB/s)") : F0(rate);

    /// <summary>Two panels, throughput (API and raw ÷ mirrors) and p50 (API and raw), against the number in flight (log 2).</summary>
    internal static string Chart(List<Point> points)
    {
        const int PanelWidth = 420, PanelHeight = 300, Left = 60, Top = 40, Gap = 80;
        var labels = points.Select(p => p.Label).Distinct().ToList();
        var inFlight = points.Select(p => p.InFlight).Distinct().Order().ToList();
        if (inFlight.Count == 0) return "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n";
        string[] colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
        var svg = new StringBuilder();
        var width = Left + 2 * PanelWidth + Gap + 20;
        var height = Top + PanelHeight + 50 + 18 * (labels.Count * 2);
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n");
        svg.Append(CultureInfo.InvariantCulture, $"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n");
        Panel(svg, Left, "writes/s (4 KiB; raw ÷ mirrors)", points, labels, inFlight, colors, p => p.ApiRate, p => p.RawRate / p.Mirrors);
        Panel(svg, Left + PanelWidth + Gap, "p50 latency, ms (4 KiB)", points, labels, inFlight, colors, p => p.ApiP50, p => p.RawP50);
        var y = Top + PanelHeight + 40;
        for (var i = 0; i < labels.Count; i++)
        {
            var color = colors[i % colors.Length];
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" x2=\"{Left + 30}\" y1=\"{y - 4}\" y2=\"{y - 4}\" stroke=\"{color}\" stroke-width=\"2\"/><text x=\"{Left + 36}\" y=\"{y}\">API, {Escape(labels[i])}</text>\n");
            y += 18;
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" x2=\"{Left + 30}\" y1=\"{y - 4}\" y2=\"{y - 4}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"5,4\"/><text x=\"{Left + 36}\" y=\"{y}\">raw Confluent.Kafka produce, {Escape(labels[i])}</text>\n");
            y += 18;
        }
        svg.Append("</svg>\n");
        return svg.ToString();

        void Panel(StringBuilder s, int x0, string title, List<Point> all, List<string> series, List<int> xs, string[] palette, Func<Point, double> api, Func<Point, double> raw)
        {
            var values = all.SelectMany(p => new[] { api(p), raw(p) }).Where(v => v > 0).ToList();
            var lo = Math.Pow(10, Math.Floor(Math.Log10(values.Min())));
            var hi = Math.Pow(10, Math.Ceiling(Math.Log10(values.Max())));
            double X(int n) => x0 + (xs.Count == 1 ? PanelWidth / 2.0 : xs.IndexOf(n) * (double)PanelWidth / (xs.Count - 1));
            double Y(double v) => Top + PanelHeight - (Math.Log10(v) - Math.Log10(lo)) / (Math.Log10(hi) - Math.Log10(lo)) * PanelHeight;
            s.Append(CultureInfo.InvariantCulture, $"<text x=\"{x0 + PanelWidth / 2}\" y=\"{Top - 16}\" text-anchor=\"middle\" font-size=\"13\">{Escape(title)}</text>\n");
            for (var tick = lo; tick <= hi * 1.0001; tick *= 10)
                s.Append(CultureInfo.InvariantCulture, $"<line x1=\"{x0}\" x2=\"{x0 + PanelWidth}\" y1=\"{Y(tick):0.0}\" y2=\"{Y(tick):0.0}\" stroke=\"#ddd\"/><text x=\"{x0 - 6}\" y=\"{Y(tick) + 4:0.0}\" text-anchor=\"end\">{Tick(tick)}</text>\n");
            foreach (var n in xs)
                s.Append(CultureInfo.InvariantCulture, $"<line x1=\"{X(n):0.0}\" x2=\"{X(n):0.0}\" y1=\"{Top}\" y2=\"{Top + PanelHeight}\" stroke=\"#eee\"/><text x=\"{X(n):0.0}\" y=\"{Top + PanelHeight + 16}\" text-anchor=\"middle\">{n}</text>\n");
            s.Append(CultureInfo.InvariantCulture, $"<text x=\"{x0 + PanelWidth / 2}\" y=\"{Top + PanelHeight + 30}\" text-anchor=\"middle\">writes in flight</text>\n");
            for (var i = 0; i < series.Count; i++)
            {
                var mine = all.Where(p => p.Label == series[i]).OrderBy(p => p.InFlight).ToList();
                Line(s, mine.Select(p => (X(p.InFlight), Y(api(p)))), palette[i % palette.Length], dashed: false);
                Line(s, mine.Select(p => (X(p.InFlight), Y(raw(p)))), palette[i % palette.Length], dashed: true);
            }
        }
    }

    private static void Line(StringBuilder svg, IEnumerable<(double X, double Y)> points, string color, bool dashed)
    {
        var list = points.ToList();
        if (list.Count == 0) return;
        svg.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{(dashed ? " stroke-dasharray=\"5,4\"" : "")} points=\"{string.Join(' ', list.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.X:0.0},{p.Y:0.0}")))}\"/>\n");
        foreach (var (x, y) in list)
            svg.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{x:0.0}\" cy=\"{y:0.0}\" r=\"3\" fill=\"{color}\"/>\n");
    }

    private static string Tick(double value) => value.ToString(value >= 1 ? "#,0" : "0.###", CultureInfo.InvariantCulture);

    private static string Escape(string text) => System.Security.SecurityElement.Escape(text) ?? "";

    private static string F0(double v) => v.ToString("0", CultureInfo.InvariantCulture);
}
