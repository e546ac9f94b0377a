using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using TaggedMirror.Cli.Api;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm who-wrote &lt;volume&gt; &lt;block&gt;</c>: who last wrote a block, with which tag, which mirrors applied it, and
/// what each mirror holds there (docs/design.md, "Who wrote a block").
/// </summary>
internal static class WhoWroteCommand
{
    public static Command Create()
    {
        var controller = CommonOptions.Controller();
        var volume = new Argument<string>("volume") { Description = "The volume" };
        var block = new Argument<long>("block") { Description = "The block number (0-based, in the volume's blocks)" };
        var json = new Option<bool>("--json") { Description = "Print the answer as JSON" };
        var command = new Command("who-wrote", "Who last wrote a block of a volume, with which tag, and which mirrors applied it") { volume, block, controller, json };
        command.SetAction((parse, ct) => Program.RunAsync(async () =>
        {
            var name = CommonOptions.CheckVolumeName(parse.GetValue(volume)!);
            var n = parse.GetValue(block);
            if (n < 0) throw new CliException($"block must be 0 or more, not {n}");
            using var http = new TmHttp(1, TimeSpan.FromSeconds(30));
            var answer = await http.GetBlockWritersAsync(TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"), name, n, ct);
            if (parse.GetValue(json))
            {
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(answer, new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web) { WriteIndented = true }));
                return 0;
            }
            Print(answer);
            return 0;
        }));
        return command;
    }

    private static void Print(BlockWriters a)
    {
        if (a.LastWrite is { } w)
        {
            AnsiConsole.MarkupLine($"block {a.Block} of {Markup.Escape(a.Volume)} was last written by [bold]{Markup.Escape(w.Principal ?? "(unknown)")}[/] " +
                $"with tag {w.Tag} ({w.Kind} of blocks {w.FirstBlock}–{w.FirstBlock + w.BlockCount - 1}, owner epoch {w.OwnerEpoch}), " +
                $"applied by {Markup.Escape(string.Join(", ", w.AppliedBy))} (first at {w.AppliedAt.ToString("u", CultureInfo.InvariantCulture)})");
        }
        else
        {
            AnsiConsole.MarkupLine($"no mirror of {Markup.Escape(a.Volume)} records a write to block {a.Block} (never written, or only copied by a resync)");
        }
        var table = new Table().AddColumns("mirror", "state", "holds", "its newest entry");
        foreach (var m in a.Mirrors)
        {
            var entry = m.Write is { } e ? $"{e.Kind} {e.Tag} by {e.Principal ?? "-"} at {e.AppliedAt.ToString("u", CultureInfo.InvariantCulture)}" : "-";
            table.AddRow(Markup.Escape(m.Device), m.State, m.Holds, Markup.Escape(entry));
        }
        AnsiConsole.Write(table);
    }
}
