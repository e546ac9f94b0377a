using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using TaggedMirror.Cli.Api;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm status</c>: the controller's volumes, their mirrors and recent resyncs, as tables, as JSON (<c>--json</c>),
/// or redrawn every interval until Ctrl-C (<c>--watch</c>).
/// </summary>
internal static class StatusCommand
{
    public static Command Create()
    {
        var controller = CommonOptions.Controller();
        var volume = new Option<string?>("--volume") { Description = "Show only this volume (default: all)" };
        var json = new Option<bool>("--json") { Description = "Print the controller's volume objects as a JSON array, for scripts" };
        var watch = new Option<bool>("--watch") { Description = "Redraw every interval until Ctrl-C (not with --json)" };
        var interval = new Option<string>("--interval")
        {
            Description = "How often --watch redraws: e.g. 2s, 500ms, 1m, or seconds",
            DefaultValueFactory = _ => "2s",
        };
        var command = new Command("status", "Show volumes, mirrors and recent resyncs from the controller") { controller, volume, json, watch, interval };
        command.SetAction((parse, ct) => Program.RunAsync(() =>
        {
            var name = parse.GetValue(volume);
            if (name is not null) CommonOptions.CheckVolumeName(name);
            var asJson = parse.GetValue(json);
            var watching = parse.GetValue(watch);
            if (asJson && watching) throw new CliException("--watch cannot be combined with --json");
            var every = ParseInterval(parse.GetValue(interval)!);
            return RunAsync(TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"), name, asJson, watching, every, ct);
        }));
        return command;
    }

    /// <summary>Parses <c>2s</c>, <c>500ms</c>, <c>1m</c> or a plain number of seconds; at least 100 ms.</summary>
    public static TimeSpan ParseInterval(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim().ToLowerInvariant();
        var (number, scale) = t.EndsWith("ms", StringComparison.Ordinal) ? (t[..^2], 0.001)
            : t.EndsWith('s') ? (t[..^1], 1.0)
            : t.EndsWith('m') ? (t[..^1], 60.0)
            : (t, 1.0);
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || double.IsNaN(value) || value * scale < 0.1)
            throw new CliException($"--interval '{text}' is not a duration of at least 100ms (e.g. 2s, 500ms, 1m)");
        return TimeSpan.FromSeconds(value * scale);
    }

    private static async Task<int> RunAsync(Uri controller, string? volume, bool asJson, bool watching, TimeSpan interval, CancellationToken ct)
    {
        using var http = new TmHttp(2, TimeSpan.FromSeconds(10));
        var volumes = await FetchAsync(http, controller, volume, ct);
        if (asJson)
        {
            Console.Out.WriteLine(StatusView.ToJson(volumes));
            return 0;
        }
        if (!watching)
        {
            AnsiConsole.Write(StatusView.Render(volumes));
            return 0;
        }
        try
        {
            await AnsiConsole.Live(Frame(controller, StatusView.Render(volumes), null)).StartAsync(async ctx =>
            {
                while (true)
                {
                    await Task.Delay(interval, ct);
                    string? error = null;
                    try
                    {
                        volumes = await FetchAsync(http, controller, volume, ct);
                    }
                    catch (CliException ex)
                    {
                        // Keep the last view and say why it is stale; the next round tries again.
                        error = ex.Message;
                    }
                    ctx.UpdateTarget(Frame(controller, StatusView.Render(volumes), error));
                }
            });
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Ctrl-C ends --watch: that is its normal way out.
        }
        return 0;
    }

    private static Rows Frame(Uri controller, Spectre.Console.Rendering.IRenderable view, string? error)
    {
        var header = new Markup(
            $"[grey]{Markup.Escape(controller.ToString())} at {DateTime.Now.ToString("HH:mm:ss", CultureInfo.InvariantCulture)} — Ctrl-C to stop[/]");
        return error is null
            ? new Rows(header, view)
            : new Rows(header, new Markup($"[red]stale:[/] {Markup.Escape(error)}"), view);
    }

    private static async Task<VolumeStatus[]> FetchAsync(TmHttp http, Uri controller, string? volume, CancellationToken ct)
    {
        if (volume is null) return await http.GetVolumesAsync(controller, ct);
        var one = await http.GetVolumeAsync(controller, volume, ct)
            ?? throw new CliException($"the controller at {controller} has no volume named '{volume}'");
        return [one];
    }
}
