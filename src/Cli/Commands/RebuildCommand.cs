using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using TaggedMirror.Cli.Api;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm rebuild &lt;device&gt;</c>: deletes the device's objects and rebuilds them by replaying its log while writes go
/// on, then verifies it against its peers. Shows the replay, the catch-up and the verify as they go, then where the
/// bytes came from and what the verify found. Exit code 0 when the device was rebuilt and verified identical (or
/// what differed was repaired), 3 when something is still wrong, 1 when the rebuild failed. <c>--no-wait</c> only
/// starts it; <c>--status</c> only shows the newest one.
/// </summary>
internal static class RebuildCommand
{
    public static Command Create()
    {
        var controller = CommonOptions.Controller();
        var device = new Argument<string>("device") { Description = "The device to rebuild (d0, d1, ...)" };
        var noWait = new Option<bool>("--no-wait") { Description = "Start the rebuild and return; tm rebuild <device> --status shows it" };
        var statusOnly = new Option<bool>("--status") { Description = "Show the device's newest rebuild; start nothing" };
        var json = new Option<bool>("--json") { Description = "Print the final report as JSON, for scripts" };
        var command = new Command("rebuild", "Rebuild a device's objects by replaying its log (writes go on), then verify it against its peers")
        {
            device, controller, noWait, statusOnly, json,
        };
        command.SetAction((parse, ct) => Program.RunAsync(() =>
        {
            var name = parse.GetValue(device)!;
            if (!Contracts.Names.IsValid(name)) throw new CliException($"device name '{name}' is not valid: use lower-case letters, digits or dashes");
            return RunAsync(TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"), name,
                parse.GetValue(noWait), parse.GetValue(statusOnly), parse.GetValue(json), ct);
        }));
        return command;
    }

    private static async Task<int> RunAsync(Uri controller, string device, bool noWait, bool statusOnly, bool json, CancellationToken ct)
    {
        using var http = new TmHttp(2, TimeSpan.FromSeconds(30));
        var report = statusOnly ? await http.GetRebuildAsync(controller, device, ct) : await http.StartRebuildAsync(controller, device, ct);
        if (!noWait && !statusOnly)
        {
            if (json)
            {
                while (!Finished(report))
                {
                    await Task.Delay(500, ct);
                    report = await http.GetRebuildAsync(controller, device, ct);
                }
            }
            else
            {
                AnsiConsole.MarkupLine($"rebuild of [bold]{Markup.Escape(device)}[/] ({Markup.Escape(report.Id)}): volumes {Markup.Escape(string.Join(", ", report.Volumes))}");
                report = await FollowAsync(http, controller, device, report, ct);
            }
        }
        if (json)
        {
            Console.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(report, new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web) { WriteIndented = true }));
        }
        else
        {
            Print(report);
        }
        if (report.Phase == "failed") return 1;
        if (!Finished(report)) return 0;
        return report.Verifies.All(v => v.State == "done" && v.Mismatches.All(m => m.Repaired)) ? 0 : 3;
    }

    private static bool Finished(DeviceRebuildReport r) => r.Phase is "done" or "failed";

    private static async Task<DeviceRebuildReport> FollowAsync(TmHttp http, Uri controller, string device, DeviceRebuildReport report, CancellationToken ct)
    {
        await AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async ctx =>
            {
                var replay = ctx.AddTask("replay", maxValue: 1);
                var catchUp = ctx.AddTask("catch up", maxValue: 1, autoStart: false);
                var verify = ctx.AddTask("verify", maxValue: 1, autoStart: false);
                while (!Finished(report))
                {
                    if (report.Replay is { } r)
                    {
                        var total = r.ReplayUntil.Sum(kv => Math.Max(0, kv.Value - r.LogStart.GetValueOrDefault(kv.Key)));
                        var done = r.Replayed.Sum(kv => Math.Max(0, kv.Value - r.LogStart.GetValueOrDefault(kv.Key)));
                        replay.MaxValue = Math.Max(1, total);
                        replay.Value = r.CompletedAt is null ? done : replay.MaxValue;
                        replay.Description = string.Create(CultureInfo.InvariantCulture, $"replay ({r.Transactions} writes, {r.Bytes / 1048576.0:0.0} MiB)");
                    }
                    if (report.Phase is "catching-up" or "verifying")
                    {
                        catchUp.StartTask();
                        var copying = report.Mirrors.Where(m => m.FullCopyTotalBlocks > 0 && m.State != "InSync").ToList();
                        catchUp.MaxValue = Math.Max(1, report.Mirrors.Length);
                        catchUp.Value = report.Mirrors.Count(m => m.State == "InSync");
                        catchUp.Description = copying.Count > 0
                            ? string.Create(CultureInfo.InvariantCulture, $"full copy {copying.Sum(m => m.FullCopyDoneBlocks)}/{copying.Sum(m => m.FullCopyTotalBlocks)} blocks")
                            : "catch up";
                    }
                    if (report.Phase == "verifying")
                    {
                        verify.StartTask();
                        verify.MaxValue = Math.Max(1, report.Verifies.Sum(v => v.RangesTotal));
                        verify.Value = report.Verifies.Sum(v => v.RangesDone);
                    }
                    await Task.Delay(250, ct);
                    report = await http.GetRebuildAsync(controller, device, ct);
                }
                foreach (var t in new[] { replay, catchUp, verify })
                {
                    t.StartTask();
                    t.Value = t.MaxValue;
                }
            });
        return report;
    }

    private static void Print(DeviceRebuildReport r)
    {
        var took = (r.CompletedAt ?? DateTimeOffset.UtcNow) - r.RequestedAt;
        AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
            $"rebuild {Markup.Escape(r.Id)} of [bold]{Markup.Escape(r.DeviceId)}[/]: {Markup.Escape(r.Phase)} after {took.TotalSeconds:0.0} s"));
        if (r.Error is not null) AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(r.Error)}");
        foreach (var s in r.Sources) AnsiConsole.MarkupLine($"  - {Markup.Escape(s)}");
        var mirrors = new Table().AddColumns("volume", "mirror state", "reason");
        foreach (var m in r.Mirrors) mirrors.AddRow(Markup.Escape(m.Volume), Markup.Escape(m.State), Markup.Escape(m.Reason ?? ""));
        if (r.Mirrors.Length > 0) AnsiConsole.Write(mirrors);
        foreach (var v in r.Verifies)
        {
            var wrong = v.Mismatches.Where(m => m.Device == r.DeviceId).ToList();
            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"  verify {Markup.Escape(v.Id)} of {Markup.Escape(v.Volume)}: {Markup.Escape(v.State)}, {v.BlocksChecked} blocks compared, {(wrong.Count == 0 ? "identical to its peers" : $"{wrong.Count} runs differed on {r.DeviceId} ({wrong.Count(m => m.Repaired)} repaired)")}"));
        }
    }
}
