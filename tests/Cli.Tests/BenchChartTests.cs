using System.Text.Json;
using TaggedMirror.Cli.Commands;

namespace TaggedMirror.Cli.Tests;

/// <summary><c>tm bench-chart</c>: the ratios and per-write CPU it tabulates from <c>tm bench</c> result files, and its refusals.</summary>
public sealed class BenchChartTests
{
    private static JsonElement Result(int size, int concurrency, double apiRate, double rawRate, bool withCpu = true, bool withRaw = true) =>
        JsonDocument.Parse(JsonSerializer.Serialize(new
        {
            parameters = new { size, concurrency, mirrors = 2 },
            api = new { writes = 1000, writesPerSecond = apiRate, mibPerSecond = apiRate * size / 1048576.0, latency = new { p50Ms = 4.0 }, appliedAfterLastAckSeconds = 0.1 },
            rawKafka = withRaw
                ? new
                {
                    messagesPerSecond = rawRate,
                    mibPerSecond = rawRate * size / 1048576.0,
                    latency = new { p50Ms = 1.6 },
                    cpu = new { perMessageMicroseconds = new Dictionary<string, double> { ["machine (all cores)"] = 125.0 }, producesOnlyCeilingWritesPerSecond = 8000.0 },
                }
                : null,
            cpu = withCpu
                ? new { seconds = new Dictionary<string, double> { ["controller"] = 0.2, ["controller postgresql"] = 0.25, ["agent-d0"] = 0.06, ["agent-d0 postgresql"] = 0.08, ["machine (all cores)"] = 1.0, ["tm-bench"] = 0.3 } }
                : null,
            peakMemory = new Dictionary<string, object?> { ["controller"] = new { peakWorkingSetBytes = 240L * 1024 * 1024 }, ["agent-d0"] = null },
        })).RootElement;

    [Fact]
    public void the_table_gives_the_api_against_the_raw_rate_per_mirror_and_cpu_per_write()
    {
        var point = BenchChartCommand.Read("after", "4k-c16.json", Result(4096, 16, apiRate: 2000, rawRate: 8000));
        var row = BenchChartCommand.Table([point]).Split('\n')[2];
        var cells = row.Trim('|').Split('|').Select(c => c.Trim()).ToArray();
        Assert.Equal("after", cells[0]);
        Assert.Equal("4 KiB, 16 in flight", cells[1]);
        Assert.Equal("0.50", cells[4]); // 2000 ÷ (8000 ÷ 2)
        Assert.Equal("2.5", cells[7]); // 4.0 ms ÷ 1.6 ms
        Assert.Equal("200 (+250)", cells[8]); // 0.2 s and 0.25 s over 1000 writes
        Assert.Equal("60 (+80)", cells[9]);
        Assert.Equal("1000", cells[10]);
        Assert.Equal("240", cells[12]); // the unreachable agent has no figure
        Assert.Equal("300", cells[13]); // the benchmark client's own CPU per write
        Assert.Equal("125", cells[14]); // the raw produce's machine CPU per message
        Assert.Equal("8000", cells[15]);
    }

    [Fact]
    public void a_result_without_cpu_figures_shows_them_as_unknown_not_zero()
    {
        var row = BenchChartCommand.Table([BenchChartCommand.Read("old", "4k-c1.json", Result(4096, 1, 200, 600, withCpu: false))]).Split('\n')[2];
        Assert.Contains("| ? (+?) |", row, StringComparison.Ordinal);
    }

    [Fact]
    public void a_result_without_its_raw_baseline_or_not_from_tm_bench_is_refused_by_name()
    {
        var noRaw = Assert.Throws<CliException>(() => BenchChartCommand.Read("x", "4k-c1.json", Result(4096, 1, 200, 600, withRaw: false)));
        Assert.Contains("4k-c1.json", noRaw.Message, StringComparison.Ordinal);
        var other = Assert.Throws<CliException>(() => BenchChartCommand.Read("x", "resync.json", JsonDocument.Parse("{\"kind\":\"resync\"}").RootElement));
        Assert.Contains("not a tm bench result file", other.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void the_chart_puts_each_run_in_flight_count_on_the_axis_with_plain_tick_labels()
    {
        var points = new[] { 1, 4, 16, 64 }.Select(n => BenchChartCommand.Read("r", $"4k-c{n}.json", Result(4096, n, 200.0 * n, 600.0 * n))).ToList();
        var svg = BenchChartCommand.Chart(points);
        Assert.StartsWith("<svg", svg, StringComparison.Ordinal);
        foreach (var n in new[] { ">1<", ">4<", ">16<", ">64<" }) Assert.Contains(n, svg, StringComparison.Ordinal);
        Assert.DoesNotContain("E+", svg, StringComparison.Ordinal);
        Assert.Equal(4, svg.Split("<polyline").Length - 1); // API and raw, one per panel
    }
}
