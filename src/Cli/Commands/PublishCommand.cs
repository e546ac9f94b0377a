using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using TaggedMirror.Contracts.Intake;
using TaggedMirror.IntakeClient;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm publish &lt;volume&gt; &lt;block&gt; --file F | --pattern B --bytes N</c>: publishes one write to the intake topic as a
/// producer does, waits for its outcome and prints it. Exit code 0 when written, 3 when refused, 1 on no outcome.
/// </summary>
internal static class PublishCommand
{
    public static Command Create()
    {
        var volume = new Argument<string>("volume") { Description = "The volume to write" };
        var block = new Argument<long>("block") { Description = "The first block to write" };
        var file = new Option<FileInfo?>("--file") { Description = "Write this file's bytes (whole blocks)" };
        var pattern = new Option<string?>("--pattern") { Description = "Write this byte (0-255, or 0x..) repeated --bytes times" };
        var bytes = new Option<int>("--bytes") { Description = "With --pattern: how many bytes", DefaultValueFactory = _ => 4096 };
        var kafka = new Option<string?>("--kafka") { Description = "Bootstrap servers (default: TaggedMirror__Kafka, else .run/kafka.bootstrap)" };
        var producer = new Option<string>("--producer") { Description = "This producer's id (outcomes are keyed by it)", DefaultValueFactory = _ => "tm-cli-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) };
        var request = new Option<string?>("--request") { Description = "The request id (default: a new one); publish again with the same id to learn a request's outcome, never writing it twice" };
        var timeout = new Option<double>("--timeout") { Description = "Seconds to wait for the outcome of each attempt", DefaultValueFactory = _ => 30 };
        var attempts = new Option<int>("--attempts") { Description = "Attempts in all (the same request id) before giving up", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print the outcome as JSON" };
        var command = new Command("publish", "Publish a write to the intake topic (as a producer does) and print its outcome")
        {
            volume, block, file, pattern, bytes, kafka, producer, request, timeout, attempts, json,
        };
        command.SetAction((parse, ct) => Program.RunAsync(() =>
        {
            var name = CommonOptions.CheckVolumeName(parse.GetValue(volume)!);
            var data = Data(parse.GetValue(file), parse.GetValue(pattern), parse.GetValue(bytes));
            var id = parse.GetValue(request);
            if (id is not null && !IntakeCodec.IsValidId(id)) throw new CliException($"request id '{id}' is not valid: use 1 to {IntakeCodec.MaxIdLength} letters, digits, '.', '_', ':' or '-'");
            var producerId = parse.GetValue(producer)!;
            if (!IntakeCodec.IsValidId(producerId)) throw new CliException($"producer id '{producerId}' is not valid");
            var seconds = parse.GetValue(timeout);
            if (seconds <= 0) throw new CliException("--timeout must be positive");
            var tries = parse.GetValue(attempts);
            if (tries < 1) throw new CliException("--attempts must be at least 1");
            var options = new IntakeProducerOptions
            {
                BootstrapServers = BenchCommand.ResolveBootstrap(parse.GetValue(kafka)),
                ProducerId = producerId,
                Key = Api.KeySource.Find() ?? throw new CliException("the intake takes requests with an API key only, and there is none: " + Api.KeySource.Describe()),
                Timeout = TimeSpan.FromSeconds(seconds),
            };
            return RunAsync(options, name, parse.GetValue(block), data, id, tries, parse.GetValue(json), ct);
        }));
        return command;
    }

    private static byte[] Data(FileInfo? file, string? pattern, int bytes)
    {
        if ((file is null) == (pattern is null)) throw new CliException("give either --file or --pattern");
        if (file is not null)
        {
            if (!file.Exists) throw new CliException($"no file {file.FullName}");
            return File.ReadAllBytes(file.FullName);
        }
        var text = pattern!.Trim();
        var ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? byte.TryParse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var b)
            : byte.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out b);
        if (!ok) throw new CliException($"--pattern '{pattern}' is not a byte (0-255 or 0x00-0xff)");
        if (bytes <= 0) throw new CliException("--bytes must be positive");
        var data = new byte[bytes];
        data.AsSpan().Fill(b);
        return data;
    }

    private static async Task<int> RunAsync(IntakeProducerOptions options, string volume, long block, byte[] data, string? requestId, int attempts, bool json, CancellationToken ct)
    {
        using var producer = IntakeProducer.Create(options);
        IntakeOutcome outcome;
        try
        {
            outcome = await producer.PublishWithRetryAsync(volume, block, data, requestId, attempts, ct);
        }
        catch (IntakeTimeoutException ex)
        {
            throw new CliException(ex.Message, 1);
        }
        if (json)
        {
            Console.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(outcome, IntakeJson.Default.IntakeOutcome));
        }
        else if (outcome.Ok)
        {
            AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                $"written: request {outcome.RequestId} of {outcome.ProducerId}, tag {outcome.Tag}, blocks [{outcome.FirstBlock}, {outcome.FirstBlock + outcome.Blocks}) of {volume}, in {outcome.MirrorsHolding} of {outcome.Mirrors} mirrors' logs")));
        }
        else
        {
            AnsiConsole.MarkupLine($"[red]refused:[/] {Markup.Escape($"request {outcome.RequestId} of {outcome.ProducerId}: {outcome.Refusal}")}");
        }
        return outcome.Ok ? 0 : 3;
    }
}
