using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using TaggedMirror.Cli.Api;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// A volume's life and the operator's changes to its shape, online (mdadm <c>--create/--add/--remove/--replace/--grow</c>,
/// ZFS <c>create/attach/detach/replace</c>): <c>tm create</c>, <c>tm attach</c>, <c>tm detach</c>, <c>tm replace</c>,
/// <c>tm grow</c>, <c>tm delete</c>.
/// Attach and replace follow the new mirror's full copy until it is in sync (exit 0), unless <c>--no-wait</c>.
/// A refusal is the controller's sentence and exit code 1; nothing was changed.
/// </summary>
internal static class MirrorCommands
{
    public static IEnumerable<Command> Create() => [CreateVolume(), Attach(), Detach(), Replace(), Grow(), Delete()];

    private static Command CreateVolume()
    {
        var controller = CommonOptions.Controller();
        var volume = new Argument<string>("volume") { Description = "The new volume's name (1 to 48 lower-case letters, digits or dashes; never one used before)" };
        var size = new Option<string>("--size") { Description = "Its size: bytes, or a whole number with KiB, MiB, GiB or TiB (a multiple of the block size)", Required = true };
        var mirrors = new Option<string>("--mirrors") { Description = "Comma-separated devices to hold its mirrors, two or more, each with an agent that has started (e.g. d0,d1)", Required = true };
        var blockSize = new Option<int>("--block-size") { Description = $"Bytes per block: a power of two from {Contracts.BlockSizes.Min} to {Contracts.BlockSizes.Max}", DefaultValueFactory = _ => 4096 };
        var minMirrors = new Option<int?>("--min-mirrors") { Description = "The fewest mirrors a write must reach to succeed (default 1): a write is answered once every reachable mirror's log holds it; one that cannot take it is degraded and resynced later" };
        var command = new Command("create", "Create a mirrored volume: one object per mirror, each on its own device; it is an NBD export at once")
        {
            volume, size, mirrors, blockSize, minMirrors, controller,
        };
        command.SetAction((parse, ct) => Program.RunAsync(async () =>
        {
            var name = CommonOptions.CheckVolumeName(parse.GetValue(volume)!);
            var bytes = CommonOptions.ParseSize(parse.GetValue(size)!, "--size");
            var block = parse.GetValue(blockSize);
            if (!Contracts.BlockSizes.IsValid(block))
                throw new CliException($"--block-size {block} is not a power of two from {Contracts.BlockSizes.Min} to {Contracts.BlockSizes.Max}");
            if (bytes % block != 0)
                throw new CliException(string.Create(CultureInfo.InvariantCulture, $"--size {bytes} bytes is not a whole number of {block}-byte blocks"));
            var devices = CommonOptions.ParseDevices(parse.GetValue(mirrors)!, "--mirrors");
            using var http = new TmHttp(2, TimeSpan.FromSeconds(60));
            var status = await http.CreateVolumeAsync(TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"), name, block, bytes / block, devices, parse.GetValue(minMirrors), ct);
            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"created [bold]{Markup.Escape(name)}[/]: {status.Blocks} blocks of {status.BlockSize} bytes ({StatusView.FormatBytes(status.Blocks * status.BlockSize)}) on {status.Mirrors.Length} mirrors, a write succeeding on at least {status.MinMirrors}"));
            AnsiConsole.MarkupLine($"mirrors: {Markup.Escape(Mirrors(status))}");
            return 0;
        }));
        return command;
    }

    private static Command Attach()
    {
        var controller = CommonOptions.Controller();
        var volume = new Argument<string>("volume") { Description = "The volume" };
        var device = new Argument<string>("device") { Description = "The device to hold the new mirror (its agent must have started once)" };
        var noWait = new Option<bool>("--no-wait") { Description = "Return once the mirror is attached; do not follow its full copy" };
        var command = new Command("attach", "Add a mirror to a live volume: it is copied to while writes go on, and read from once in sync")
        {
            volume, device, controller, noWait,
        };
        command.SetAction((parse, ct) => Program.RunAsync(async () =>
        {
            var (name, dev) = (CommonOptions.CheckVolumeName(parse.GetValue(volume)!), CommonOptions.CheckDevice(parse.GetValue(device)!));
            var uri = TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL");
            using var http = new TmHttp(2, TimeSpan.FromSeconds(60));
            var status = await http.AttachAsync(uri, name, dev, replaces: null, ct);
            AnsiConsole.MarkupLine($"attached a mirror of [bold]{Markup.Escape(name)}[/] on [bold]{Markup.Escape(dev)}[/]: {Markup.Escape(MirrorOf(status, dev)?.Reason ?? "")}");
            return parse.GetValue(noWait) ? 0 : await FollowAsync(http, uri, name, dev, replaced: null, ct);
        }));
        return command;
    }

    private static Command Replace()
    {
        var controller = CommonOptions.Controller();
        var volume = new Argument<string>("volume") { Description = "The volume" };
        var old = new Argument<string>("old-device") { Description = "The device whose mirror is replaced (failed or to be retired)" };
        var device = new Argument<string>("new-device") { Description = "The device to hold the new mirror" };
        var noWait = new Option<bool>("--no-wait") { Description = "Return once the new mirror is attached; the old one is detached by the controller when the new one is in sync" };
        var command = new Command("replace", "Replace a mirror by one on another device: the new one is copied to, then the old one detached")
        {
            volume, old, device, controller, noWait,
        };
        command.SetAction((parse, ct) => Program.RunAsync(async () =>
        {
            var name = CommonOptions.CheckVolumeName(parse.GetValue(volume)!);
            var (from, to) = (CommonOptions.CheckDevice(parse.GetValue(old)!), CommonOptions.CheckDevice(parse.GetValue(device)!));
            var uri = TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL");
            using var http = new TmHttp(2, TimeSpan.FromSeconds(60));
            await http.AttachAsync(uri, name, to, replaces: from, ct);
            AnsiConsole.MarkupLine($"replacing the mirror of [bold]{Markup.Escape(name)}[/] on {Markup.Escape(from)} by one on [bold]{Markup.Escape(to)}[/]");
            return parse.GetValue(noWait) ? 0 : await FollowAsync(http, uri, name, to, replaced: from, ct);
        }));
        return command;
    }

    private static Command Detach()
    {
        var controller = CommonOptions.Controller();
        var volume = new Argument<string>("volume") { Description = "The volume" };
        var device = new Argument<string>("device") { Description = "The device whose mirror leaves the volume" };
        var command = new Command("detach", "Take a mirror away from a volume (never the last one in sync); its object is removed from the device")
        {
            volume, device, controller,
        };
        command.SetAction((parse, ct) => Program.RunAsync(async () =>
        {
            var (name, dev) = (CommonOptions.CheckVolumeName(parse.GetValue(volume)!), CommonOptions.CheckDevice(parse.GetValue(device)!));
            using var http = new TmHttp(2, TimeSpan.FromSeconds(60));
            var result = await http.DetachAsync(TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"), name, dev, ct);
            AnsiConsole.MarkupLine($"detached the mirror of [bold]{Markup.Escape(name)}[/] on {Markup.Escape(dev)}; its object {Markup.Escape(result.Removal.ObjectId)}: {Markup.Escape(result.Removal.Outcome)}");
            AnsiConsole.MarkupLine($"mirrors now: {Markup.Escape(Mirrors(result.Volume))}");
            return 0;
        }));
        return command;
    }

    private static Command Grow()
    {
        var controller = CommonOptions.Controller();
        var volume = new Argument<string>("volume") { Description = "The volume" };
        var blocks = new Argument<long>("blocks") { Description = "Its new size in blocks (at least its base range and appends together)" };
        var command = new Command("grow", "Grow a volume online; appended blocks keep their numbers and the new blocks read as zeros")
        {
            volume, blocks, controller,
        };
        command.SetAction((parse, ct) => Program.RunAsync(async () =>
        {
            var name = CommonOptions.CheckVolumeName(parse.GetValue(volume)!);
            using var http = new TmHttp(2, TimeSpan.FromSeconds(60));
            var status = await http.GrowAsync(TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"), name, parse.GetValue(blocks), ct);
            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"[bold]{Markup.Escape(name)}[/] has {status.Blocks} blocks of {status.BlockSize} bytes now ({(double)status.Blocks * status.BlockSize / (1 << 20):0.#} MiB)"));
            return 0;
        }));
        return command;
    }

    private static Command Delete()
    {
        var controller = CommonOptions.Controller();
        var volume = new Argument<string>("volume") { Description = "The volume" };
        var yes = new Option<bool>("--yes") { Description = "Yes, delete the volume and its data on every mirror" };
        var command = new Command("delete", "Delete a volume: its objects are removed from every device (its topics keep their messages until retention)")
        {
            volume, controller, yes,
        };
        command.SetAction((parse, ct) => Program.RunAsync(async () =>
        {
            var name = CommonOptions.CheckVolumeName(parse.GetValue(volume)!);
            if (!parse.GetValue(yes))
                throw new CliException($"this deletes volume {name} and its data on every mirror, and its name is not used again: add --yes");
            using var http = new TmHttp(2, TimeSpan.FromSeconds(60));
            var result = await http.DeleteVolumeAsync(TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"), name, ct);
            AnsiConsole.MarkupLine($"deleted [bold]{Markup.Escape(name)}[/]");
            var table = new Table().AddColumns("device", "object", "removal");
            foreach (var o in result.Objects) table.AddRow(Markup.Escape(o.Device), Markup.Escape(o.ObjectId), Markup.Escape(o.Outcome));
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// Shows the new mirror's full copy until it is in sync (and, for a replace, until the old one is detached). Exit 0
    /// then; 1 if the new mirror left the volume meanwhile.
    /// </summary>
    private static async Task<int> FollowAsync(TmHttp http, Uri controller, string volume, string device, string? replaced, CancellationToken ct)
    {
        var outcome = 0;
        await AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask("full copy", maxValue: 1);
                while (true)
                {
                    var status = await http.GetVolumeAsync(controller, volume, ct) ?? throw new CliException($"volume {volume} is gone");
                    if (MirrorOf(status, device) is not { } m)
                    {
                        outcome = 1;
                        AnsiConsole.MarkupLine($"[red]the mirror on {Markup.Escape(device)} is no longer part of {Markup.Escape(volume)}[/]");
                        return;
                    }
                    task.MaxValue = Math.Max(1, m.FullCopyTotalBlocks);
                    task.Value = m.State == "InSync" ? task.MaxValue : m.FullCopyDoneBlocks;
                    task.Description = string.Create(CultureInfo.InvariantCulture, $"{device}: {m.State}, {m.FullCopyDoneBlocks}/{m.FullCopyTotalBlocks} blocks");
                    if (m.State == "InSync" && (replaced is null || MirrorOf(status, replaced) is null)) return;
                    await Task.Delay(250, ct);
                }
            });
        if (outcome == 0 && await http.GetVolumeAsync(controller, volume, ct) is { } done)
            AnsiConsole.MarkupLine($"in sync; mirrors now: {Markup.Escape(Mirrors(done))}");
        return outcome;
    }

    private static MirrorStatus? MirrorOf(VolumeStatus v, string device) => Array.Find(v.Mirrors, m => m.DeviceId == device);

    private static string Mirrors(VolumeStatus v) => string.Join(", ", v.Mirrors.Select(m => $"{m.DeviceId} ({m.State})"));
}
