using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Spectre.Console.Rendering;
using TaggedMirror.Cli.Api;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// What <c>tm status</c> shows: pure functions from the controller's volume objects to a Spectre view, to plain text
/// (for tests and pipes) and to JSON (for scripts).
/// </summary>
internal static class StatusView
{
    public const string FullCopyLabel = "full copy";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary>The volumes table, the mirrors table and the recent resyncs, stacked.</summary>
    public static IRenderable Render(IReadOnlyList<VolumeStatus> volumes)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        if (volumes.Count == 0) return new Markup("[grey]no volumes[/]\n");
        return volumes.Any(v => v.Verify is not null)
            ? new Rows(VolumesTable(volumes), MirrorsTable(volumes), ResyncsTable(volumes), VerifyTable(volumes))
            : new Rows(VolumesTable(volumes), MirrorsTable(volumes), ResyncsTable(volumes));
    }

    /// <summary><see cref="Render"/> written without colours or ANSI codes at a fixed width.</summary>
    public static string ToPlainText(IReadOnlyList<VolumeStatus> volumes, int width = 200)
    {
        using var writer = new StringWriter(CultureInfo.InvariantCulture);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = width;
        console.Write(Render(volumes));
        return writer.ToString();
    }

    /// <summary>The volumes as a JSON array of the controller's volume objects.</summary>
    public static string ToJson(IReadOnlyList<VolumeStatus> volumes) => JsonSerializer.Serialize(volumes, Json);

    public static VolumeStatus[] FromJson(string json) =>
        JsonSerializer.Deserialize<VolumeStatus[]>(json, Json) ?? throw new JsonException("the JSON is null, not an array of volumes");

    /// <summary>The markup colour of a mirror state: InSync green, Resyncing and Rebuilding (on their way back) yellow, anything else red.</summary>
    public static string StateColour(string state) => state switch
    {
        "InSync" => "green",
        "Resyncing" or "Rebuilding" => "yellow",
        _ => "red",
    };

    /// <summary>How far a running full copy is, e.g. <c>50%</c>; empty when none is running.</summary>
    public static string FullCopyProgress(MirrorStatus mirror)
    {
        ArgumentNullException.ThrowIfNull(mirror);
        if (mirror.FullCopyTotalBlocks <= 0) return "";
        var percent = Math.Clamp(mirror.FullCopyDoneBlocks * 100 / mirror.FullCopyTotalBlocks, 0, 100);
        return string.Create(CultureInfo.InvariantCulture, $"{percent}% ({mirror.FullCopyDoneBlocks}/{mirror.FullCopyTotalBlocks})");
    }

    public static string FormatBytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        var unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.#} {units[unit]}");
    }

    private static Table VolumesTable(IReadOnlyList<VolumeStatus> volumes)
    {
        var table = new Table().Title("Volumes").AddColumns("volume", "size", "block size", "writes", "bytes", "in flight", "owner");
        RightAlign(table, 1, 2, 3, 4, 5);
        foreach (var v in volumes)
        {
            table.AddRow(
                Cell(v.Name),
                Cell(FormatBytes(v.TotalBlocks * v.BlockSize)),
                Cell(N(v.BlockSize) + " B"),
                Cell(N(v.WritesAccepted)),
                Cell(FormatBytes(v.BytesAccepted)),
                Cell(N(v.InflightWrites)),
                Cell(v.Owned ? "yes" : "no"));
        }
        return table;
    }

    private static Table MirrorsTable(IReadOnlyList<VolumeStatus> volumes)
    {
        var table = new Table().Title("Mirrors")
            .AddColumns("volume", "device", "state", "reason", "live tag entries", "lag messages", "unapplied bytes", "full copy");
        RightAlign(table, 4, 5, 6, 7);
        foreach (var v in volumes)
        {
            foreach (var m in v.Mirrors)
            {
                table.AddRow(
                    Cell(v.Name),
                    Cell(m.DeviceId),
                    new Markup($"[{StateColour(m.State)}]{Markup.Escape(m.State)}[/]"),
                    Cell(m.Reason ?? ""),
                    Cell(N(m.LiveTagEntries)),
                    Cell(N(m.LagMessages)),
                    Cell(FormatBytes(m.UnappliedBytes)),
                    Cell(FullCopyProgress(m)));
            }
        }
        return table;
    }

    private static Table ResyncsTable(IReadOnlyList<VolumeStatus> volumes)
    {
        var table = new Table().Title("Recent resyncs").AddColumns("volume", "tag", "source → target", "blocks", "bytes", "ms", "completed (UTC)");
        RightAlign(table, 4, 5);
        foreach (var v in volumes)
        {
            if (v.Resyncs is not { } resyncs) continue;
            foreach (var r in resyncs.Recent)
            {
                var last = r.FirstBlock + r.BlockCount - 1;
                var range = string.Create(CultureInfo.InvariantCulture, $"{r.FirstBlock}..{last}") + (r.Extension ? " (ext)" : "");
                table.AddRow(
                    Cell(v.Name),
                    Cell(r.Tag ?? FullCopyLabel),
                    Cell($"{r.Source} → {r.Target}"),
                    Cell(range),
                    Cell(FormatBytes(r.Bytes)),
                    Cell(r.DurationMs.ToString("0.#", CultureInfo.InvariantCulture)),
                    Cell(r.CompletedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)));
            }
        }
        var count = volumes.Sum(v => v.Resyncs?.Count ?? 0);
        var copied = volumes.Sum(v => v.Resyncs?.BytesCopied ?? 0);
        table.Caption(string.Create(CultureInfo.InvariantCulture, $"{count} resyncs in all, {FormatBytes(copied)} copied"));
        if (table.Rows.Count == 0) table.AddRow(Cell("(none)"), Cell(""), Cell(""), Cell(""), Cell(""), Cell(""), Cell(""));
        return table;
    }

    /// <summary>The newest verify of each volume that had one since its controller started.</summary>
    private static Table VerifyTable(IReadOnlyList<VolumeStatus> volumes)
    {
        var table = new Table().Title("Verify").AddColumns("volume", "state", "progress", "blocks checked", "wrong runs", "repaired", "bytes repaired", "started (UTC)");
        RightAlign(table, 3, 4, 5, 6);
        foreach (var v in volumes)
        {
            if (v.Verify is not { } r) continue;
            table.AddRow(
                Cell(v.Name),
                Cell(r.State),
                Cell(string.Create(CultureInfo.InvariantCulture, $"{r.RangesDone}/{r.RangesTotal} ranges")),
                Cell(r.BlocksChecked.ToString(CultureInfo.InvariantCulture)),
                Cell(r.Mismatches.Count.ToString(CultureInfo.InvariantCulture)),
                Cell(r.Mismatches.Count(m => m.Repaired).ToString(CultureInfo.InvariantCulture)),
                Cell(FormatBytes(r.BytesRepaired)),
                Cell(r.StartedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)));
        }
        return table;
    }

    private static void RightAlign(Table table, params int[] columns)
    {
        foreach (var c in columns) table.Columns[c].RightAligned();
    }

    private static Text Cell(string text) => new(text);

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);
}
