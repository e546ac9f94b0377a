using System.CommandLine;
using Spectre.Console;
using TaggedMirror.Cli.Commands;
using TaggedMirror.KafkaNative;

namespace TaggedMirror.Cli;

/// <summary><c>tm</c>: the TaggedMirror command line (TaggedMirror.Cli.dll).</summary>
internal static class Program
{
    public static Task<int> Main(string[] args)
    {
        // Before any command builds a Kafka client (bench's raw produce baseline).
        Librdkafka.Install();
        var root = new RootCommand("tm — TaggedMirror command line: demo and benchmarks against a running stack (ops/stack-start.sh)")
        {
            DemoCommand.Create(),
            BenchCommand.Create(),
            BenchResyncCommand.Create(),
            BenchGrowthCommand.Create(),
            BenchRebuildCommand.Create(),
            BenchNbdCommand.Create(),
            BenchChartCommand.Create(),
            StatusCommand.Create(),
            VerifyCommand.Create(),
            RebuildCommand.Create(),
            OtlpSinkCommand.Create(),
            PublishCommand.Create(),
            KeyCommands.Create(),
            WhoWroteCommand.Create(),
        };
        foreach (var command in MirrorCommands.Create()) root.Subcommands.Add(command);
        return root.Parse(args).InvokeAsync();
    }

    /// <summary>Runs a command's body; a <see cref="CliException"/> is printed as one sentence with its exit code.</summary>
    public static async Task<int> RunAsync(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (CliException ex)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(ex.Message)}");
            return ex.ExitCode;
        }
        catch (OperationCanceledException)
        {
            AnsiConsole.MarkupLine("[yellow]cancelled[/]");
            return 130;
        }
    }
}
