using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using TaggedMirror.Cli.Api;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm verify &lt;volume&gt;</c>: an online scrub (md's <c>check</c>, ZFS's <c>scrub</c>). Starts it on the controller,
/// shows its progress, and prints what it found wrong, on which mirror, and whether it was repaired. Exit code 0 when
/// nothing was wrong or everything wrong was repaired, 3 when something is still wrong, 1 when the verify failed.
/// </summary>
internal static class VerifyCommand
{
    public static Command Create()
    {
        var controller = CommonOptions.Controller();
        var volume = new Argument<string>("volume") { Description = "The volume to verify" };
        var noRepair = new Option<bool>("--no-repair") { Description = "Only report what is wrong; change nothing" };
        var rangeBlocks = new Option<int>("--range-blocks") { Description = "Blocks checked under one fence (1 to 4096)", DefaultValueFactory = _ => 256 };
        var maxRate = new Option<string>("--max-rate") { Description = "Most bytes read per second from each mirror set: bytes, or with KiB/MiB/GiB; 0: no limit", DefaultValueFactory = _ => "0" };
        var json = new Option<bool>("--json") { Description = "Print the final report as JSON, for scripts" };
        var command = new Command("verify", "Check that every mirror of a volume holds the same bytes as written, and repair what is not")
        {
            volume, controller, noRepair, rangeBlocks, maxRate, json,
        };
        command.SetAction((parse, ct) => Program.RunAsync(() =>
        {
            var name = CommonOptions.CheckVolumeName(parse.GetValue(volume)!);
            var blocks = parse.GetValue(rangeBlocks);
            if (blocks is < 1 or > BlockChecksums.MaxBlocks) throw new CliException($"--range-blocks must be from 1 to {BlockChecksums.MaxBlocks}");
            var rate = CommonOptions.ParseSize(parse.GetValue(maxRate)!, "--max-rate", allowZero: true);
            return RunAsync(TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"), name, !parse.GetValue(noRepair), blocks, rate, parse.GetValue(json), ct);
        }));
        return command;
    }

    private static async Task<int> RunAsync(Uri controller, string volume, bool repair, int rangeBlocks, long rate, bool json, CancellationToken ct)
    {
        using var http = new TmHttp(2, TimeSpan.FromSeconds(30));
        var report = await http.StartVerifyAsync(controller, volume, repair, rangeBlocks, rate, ct);
        if (json)
        {
            while (report.State == "running")
            {
                await Task.Delay(500, ct);
                report = await http.GetVerifyAsync(controller, volume, ct);
            }
            Console.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(report, new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web) { WriteIndented = true }));
        }
        else
        {
            AnsiConsole.MarkupLine($"verify [bold]{Markup.Escape(volume)}[/] ({Markup.Escape(report.Id)}){(repair ? ", repairing" : ", report only")}");
            await AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .StartAsync(async ctx =>
                {
                    var task = ctx.AddTask("ranges", maxValue: Math.Max(1, report.RangesTotal));
                    while (report.State == "running")
                    {
                        task.MaxValue = Math.Max(1, report.RangesTotal);
                        task.Value = report.RangesDone;
                        task.Description = string.Create(CultureInfo.InvariantCulture, $"{report.BlocksChecked} blocks, {report.Mismatches.Count} wrong");
                        await Task.Delay(250, ct);
                        report = await http.GetVerifyAsync(controller, volume, ct);
                    }
                    task.Value = task.MaxValue;
                });
            Print(report);
        }
        if (report.State == "failed") return 1;
        return report.Mismatches.All(m => m.Repaired) ? 0 : 3;
    }

    private static void Print(VerifyReport r)
    {
        var took = (r.FinishedAt ?? DateTimeOffset.UtcNow) - r.StartedAt;
        AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
            $"{Markup.Escape(r.State)}: {r.BlocksChecked} blocks checked in {took.TotalSeconds:0.0} s, {r.RangesSkipped} ranges skipped (no mirror in sync), {r.Mismatches.Count} wrong runs, {r.BytesRepaired} bytes repaired"));
        if (r.Error is not null) AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(r.Error)}");
        if (r.Mismatches.Count == 0) return;
        var table = new Table().AddColumns("mirror", "blocks", "kind", "right copy from", "repaired", "note");
        foreach (var m in r.Mismatches)
        {
            table.AddRow(Markup.Escape(m.Device), Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"[{m.FirstBlock}, {m.FirstBlock + m.Blocks})")),
                Markup.Escape(m.Kind), Markup.Escape(m.Source ?? "-"), m.Repaired ? "[green]yes[/]" : "[red]no[/]", Markup.Escape(m.Note ?? ""));
        }
        AnsiConsole.Write(table);
    }
}
