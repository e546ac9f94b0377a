using System.CommandLine;
using System.Diagnostics;
using Spectre.Console;
using TaggedMirror.Cli.Api;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm demo</c>: writes a mix of overlapping writes and appends, reads everything back through the controller
/// and from each mirror directly, compares with an in-memory model, and shows that the tag tables drain (M5).
/// </summary>
internal static class DemoCommand
{
    private const int BlockSize = 4096;
    private const long VolumeBlocks = 1024;
    private const int MaxWriteBlocks = 16;
    private const int Appends = 4;
    private const int ReadChunkBlocks = 256;
    private static readonly string[] Mirrors = ["d0", "d1"];
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(15);

    public static Command Create()
    {
        var controller = CommonOptions.Controller();
        var agents = CommonOptions.Agents();
        var volume = CommonOptions.Volume("demo");
        var writes = new Option<int>("--writes") { Description = "How many writes (4 to 64 KiB each)", DefaultValueFactory = _ => 200 };
        var seed = new Option<int?>("--seed") { Description = "Seed for sizes, offsets and data (default: random, printed)" };
        var nbd = new Option<string>("--nbd")
        {
            Description = "The controller's NBD server (host:port) to write and read the volume through as a block device too; 'off' to skip",
            DefaultValueFactory = _ => "127.0.0.1:10809",
        };
        var command = new Command("demo", "Write, read back and verify a mirrored volume (over HTTP and as an NBD block device), then show the tag tables drained")
        {
            controller, volume, writes, agents, seed, nbd,
        };
        command.SetAction((parse, ct) => Program.RunAsync(() => RunAsync(
            TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"),
            CommonOptions.CheckVolumeName(parse.GetValue(volume)!),
            parse.GetValue(writes),
            CommonOptions.ParseAgents(parse.GetValue(agents)!),
            parse.GetValue(seed) ?? Random.Shared.Next(),
            ParseNbd(parse.GetValue(nbd)!),
            ct)));
        return command;
    }

    private static (string Host, int Port)? ParseNbd(string text)
    {
        if (text == "off") return null;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            throw new CliException($"--nbd '{text}' is not host:port (or 'off')");
        return (text[..colon], port);
    }

    private static async Task<int> RunAsync(Uri controller, string volume, int writes, Uri[] agents, int seed, (string Host, int Port)? nbd, CancellationToken ct)
    {
        if (writes < 1) throw new CliException("--writes must be at least 1");
        using var http = new TmHttp(8, TimeSpan.FromSeconds(60));
        var before = await http.GetControllerAsync(controller, ct);
        AnsiConsole.MarkupLine($"controller [bold]{before.ControllerId}[/] at {Markup.Escape(controller.ToString())}, epoch {before.Epoch}, {before.TagsIssued} tags issued so far");

        var created = await http.CreateVolumeAsync(controller, volume, BlockSize, VolumeBlocks, Mirrors, ct);
        var info = await http.GetVolumeAsync(controller, volume, ct) ?? throw new CliException($"volume {volume} vanished right after it was created");
        if (info.BlockSize != BlockSize)
            throw new CliException($"volume {volume} exists with {info.BlockSize}-byte blocks; the demo needs {BlockSize}: pick another --volume");
        if (info.Blocks < MaxWriteBlocks)
            throw new CliException($"volume {volume} has only {info.Blocks} blocks; the demo needs at least {MaxWriteBlocks}: pick another --volume");
        AnsiConsole.MarkupLine(created
            ? $"created volume [bold]{volume}[/]: {info.Blocks} × {BlockSize} bytes on {string.Join(", ", info.Mirrors.Select(m => m.DeviceId))}"
            : $"volume [bold]{volume}[/] exists ({info.TotalBlocks} blocks); reading its contents as the starting point");

        // A reused volume starts from whatever it holds; a new one reads as zeros.
        var model = new VolumeModel(BlockSize);
        if (!created) model.Load(0, await ReadRangeAsync(http, controller, volume, 0, info.TotalBlocks, ct));
        else model.EnsureBlocks(info.TotalBlocks);

        var rng = new Random(seed);
        var done = new List<(Tag Tag, long FirstBlock, byte[] Data)>(writes + Appends);
        var appendAt = Enumerable.Range(1, Appends).Select(i => i * writes / (Appends + 1)).ToHashSet();
        long bytes = 0;
        var notOnEveryMirror = 0;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < writes; i++)
        {
            var count = rng.Next(1, MaxWriteBlocks + 1);
            // Half the writes land in a small hot region so that many overlap.
            var span = rng.Next(2) == 0 ? Math.Min(64, info.Blocks) : info.Blocks;
            var first = rng.NextInt64(0, span - count + 1);
            var data = new byte[count * BlockSize];
            rng.NextBytes(data);
            var r = await http.WriteAsync(controller, volume, first, data, waitApplied: i % 10 == 9, ct);
            if (r.FirstBlock != first || r.Blocks != count)
                throw new CliException($"write {i + 1} of blocks [{first}, {first + count}) was answered as [{r.FirstBlock}, {r.FirstBlock + r.Blocks})");
            done.Add((ParseTag(r.Tag), first, data));
            bytes += data.Length;
            if (r.MirrorsHolding < r.Mirrors) notOnEveryMirror++;

            if (appendAt.Contains(i))
            {
                var appendData = new byte[rng.Next(1, 5) * BlockSize];
                rng.NextBytes(appendData);
                var a = await http.AppendAsync(controller, volume, appendData, ct);
                done.Add((ParseTag(a.Tag), a.FirstBlock, appendData));
                bytes += appendData.Length;
                if (a.MirrorsHolding < a.Mirrors) notOnEveryMirror++;
            }
        }
        var writeSeconds = clock.Elapsed.TotalSeconds;
        AnsiConsole.MarkupLine($"wrote {writes} writes and {done.Count - writes} appends, {bytes / 1024.0 / 1024.0:0.0} MiB in {writeSeconds:0.00} s (seed {seed})");

        // Sequential calls get increasing tags; applying in tag order is what the mirrors do whatever the order of calls.
        var ordered = done.OrderBy(w => w.Tag).ToList();
        var outOfOrder = ordered.Where((w, k) => !ReferenceEquals(w.Data, done[k].Data)).Count();
        foreach (var (_, firstBlock, data) in ordered) model.Apply(firstBlock, data);

        info = await http.GetVolumeAsync(controller, volume, ct) ?? throw new CliException($"volume {volume} vanished");
        var failures = new List<string>();
        if (info.TotalBlocks != model.Blocks)
            failures.Add($"the volume has {info.TotalBlocks} blocks, the model {model.Blocks} (appends went somewhere unexpected)");
        if (outOfOrder > 0)
            failures.Add($"{outOfOrder} sequential writes got tags out of call order");

        if (nbd is { } server) await ThroughNbdAsync(server, volume, info.Blocks, model, rng, failures, ct);

        var readBack = await ReadRangeAsync(http, controller, volume, 0, model.Blocks, ct);
        var controllerMismatches = model.Compare(readBack);
        if (controllerMismatches.Count > 0)
            failures.Add($"reads through the controller differ from the model in {controllerMismatches.Count} blocks, first: {Blocks(controllerMismatches)}");
        AnsiConsole.MarkupLine($"read back {model.Blocks} blocks through the controller: {(controllerMismatches.Count == 0 ? "[green]identical to the model[/]" : "[red]DIFFERENT[/]")}");

        var drained = await WaitDrainedAsync(http, controller, volume, ct);
        info = drained.Info;
        if (!drained.Ok)
        {
            failures.Add($"tag tables did not drain within {DrainTimeout.TotalSeconds:0} s: " +
                string.Join(", ", info.Mirrors.Select(m => $"{m.DeviceId} {m.LiveTagEntries} live entries, {m.LagMessages} messages behind")));
        }

        // Each mirror read directly from its agent: mirrors must end byte-identical, not just the copy a read picked.
        var agentStatus = new Dictionary<string, (Uri Uri, DeviceStatusAnswer Status)>(StringComparer.Ordinal);
        foreach (var agent in agents)
        {
            var s = await http.GetAgentStatusAsync(agent, ct);
            agentStatus[s.DeviceId] = (agent, s);
        }
        var mirrorResults = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var m in info.Mirrors)
        {
            if (!agentStatus.TryGetValue(m.DeviceId, out var a))
            {
                mirrorResults[m.DeviceId] = "not checked (no --agents URL)";
                continue;
            }
            var bytesOnMirror = await ReadObjectAsync(http, a.Uri, m.ObjectId, model.Blocks * BlockSize, ct);
            var diff = model.Compare(bytesOnMirror);
            mirrorResults[m.DeviceId] = diff.Count == 0 ? $"{model.Blocks} blocks identical" : $"{diff.Count} blocks differ";
            if (diff.Count > 0) failures.Add($"mirror {m.DeviceId} ({m.ObjectId}) differs from the model in {diff.Count} blocks, first: {Blocks(diff)}");
        }

        var after = await http.GetControllerAsync(controller, ct);
        var table = new Table().Border(TableBorder.Rounded).Title($"tm demo — volume {volume}").HideHeaders();
        table.AddColumn("");
        table.AddColumn("");
        table.AddRow("controller / epoch", $"{after.ControllerId} / {after.Epoch}");
        table.AddRow("tags issued", $"{after.TagsIssued} (this run: {after.TagsIssued - before.TagsIssued})");
        table.AddRow("writes / appends", $"{writes} / {done.Count - writes}" + (notOnEveryMirror > 0 ? $" ({notOnEveryMirror} not on every mirror)" : ""));
        table.AddRow("bytes written", $"{bytes:N0} ({bytes / writeSeconds / 1024 / 1024:0.0} MiB/s sequential)");
        table.AddRow("volume", $"{info.Blocks} blocks + {info.ExtensionBlocks} extension blocks of {info.BlockSize} bytes");
        table.AddRow("reads verified (controller)", controllerMismatches.Count == 0 ? $"{model.Blocks} blocks identical" : $"[red]{controllerMismatches.Count} blocks differ[/]");
        foreach (var m in info.Mirrors)
        {
            var agentEntries = agentStatus.TryGetValue(m.DeviceId, out var a) ? a.Status.LiveEntries.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?";
            table.AddRow($"mirror {m.DeviceId}",
                Markup.Escape($"{m.State}{(m.Reason is null ? "" : " (" + m.Reason + ")")}; tag table: {m.LiveTagEntries} live entries for this volume, {agentEntries} on the device; " +
                    $"applied {m.AppliedOffset}/{m.LogEndOffset}; {mirrorResults.GetValueOrDefault(m.DeviceId, "not checked")}"));
        }
        AnsiConsole.Write(table);

        if (failures.Count == 0)
        {
            AnsiConsole.MarkupLine("[green]demo passed[/]: every write read back identical through the controller and on every mirror; tag tables drained");
            return 0;
        }
        foreach (var f in failures) AnsiConsole.MarkupLine($"[red]FAILED[/]: {Markup.Escape(f)}");
        return 1;
    }

    private static Tag ParseTag(string text) =>
        Tag.TryParse(text, out var tag) ? tag : throw new CliException($"the controller answered a tag '{text}' that is not controller:epoch:seq");

    private static string Blocks(IReadOnlyList<long> blocks) => string.Join(", ", blocks.Take(8)) + (blocks.Count > 8 ? ", …" : "");

    /// <summary>
    /// The same volume as a block device: writes through the controller's NBD export (one with FUA), a flush, and the
    /// whole export read back through NBD against the model; the HTTP reads and mirror checks that follow include them.
    /// </summary>
    private static async Task ThroughNbdAsync((string Host, int Port) server, string volume, long blocks, VolumeModel model, Random rng, List<string> failures, CancellationToken ct)
    {
        const int Writes = 16;
        try
        {
            await using var client = await Nbd.Client.NbdClient.ConnectAsync(server.Host, server.Port, volume, ct);
            var clock = Stopwatch.StartNew();
            long bytes = 0;
            for (var i = 0; i < Writes; i++)
            {
                var count = rng.Next(1, MaxWriteBlocks + 1);
                var first = rng.NextInt64(0, blocks - count + 1);
                var data = new byte[count * BlockSize];
                rng.NextBytes(data);
                await client.WriteAsync((ulong)(first * BlockSize), data, fua: i == 0, ct);
                model.Apply(first, data);
                bytes += data.Length;
            }
            await client.FlushAsync(ct);
            var image = new byte[blocks * BlockSize];
            for (long b = 0; b < blocks; b += ReadChunkBlocks)
            {
                var n = (int)Math.Min(ReadChunkBlocks, blocks - b);
                (await client.ReadAsync((ulong)(b * BlockSize), (uint)(n * BlockSize), ct)).CopyTo(image, b * BlockSize);
            }
            var diff = model.Compare(image).Where(b => b < blocks).ToList();   // the export is the volume without its appended extension
            AnsiConsole.MarkupLine($"NBD: wrote {Writes} writes ({bytes / 1024.0:0} KiB, one with FUA) to nbd://{server.Host}:{server.Port}/{volume} in {clock.Elapsed.TotalSeconds:0.00} s, flushed, " +
                $"read back {blocks} blocks: {(diff.Count == 0 ? "[green]identical to the model[/]" : "[red]DIFFERENT[/]")}");
            if (diff.Count > 0) failures.Add($"reads through NBD differ from the model in {diff.Count} blocks, first: {Blocks(diff)}");
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException)
        {
            failures.Add($"NBD at {server.Host}:{server.Port}: {ex.Message} (--nbd off skips this part)");
        }
    }

    private static async Task<byte[]> ReadRangeAsync(TmHttp http, Uri controller, string volume, long firstBlock, long blocks, CancellationToken ct)
    {
        var result = new byte[blocks * BlockSize];
        for (var b = 0L; b < blocks; b += ReadChunkBlocks)
        {
            var n = (int)Math.Min(ReadChunkBlocks, blocks - b);
            var chunk = await http.ReadBlocksAsync(controller, volume, firstBlock + b, n, ct);
            if (chunk.Length != n * BlockSize)
                throw new CliException($"a read of {n} blocks at {firstBlock + b} returned {chunk.Length} bytes, not {n * BlockSize}");
            chunk.CopyTo(result, b * BlockSize);
        }
        return result;
    }

    private static async Task<byte[]> ReadObjectAsync(TmHttp http, Uri agent, string objectId, long length, CancellationToken ct)
    {
        var result = new byte[length];
        const int chunkBytes = ReadChunkBlocks * BlockSize;
        for (var offset = 0L; offset < length; offset += chunkBytes)
        {
            var n = (int)Math.Min(chunkBytes, length - offset);
            var chunk = await http.ReadObjectAsync(agent, objectId, offset, n, ct);
            if (chunk.Length != n)
                throw new CliException($"{agent} returned {chunk.Length} bytes of {objectId} at {offset}, not {n}");
            chunk.CopyTo(result, offset);
        }
        return result;
    }

    private static async Task<(bool Ok, VolumeStatus Info)> WaitDrainedAsync(TmHttp http, Uri controller, string volume, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var info = await http.GetVolumeAsync(controller, volume, ct) ?? throw new CliException($"volume {volume} vanished");
            if (info.Mirrors.All(m => m.LiveTagEntries == 0 && m.LagMessages == 0))
            {
                AnsiConsole.MarkupLine($"tag tables drained after {deadline.Elapsed.TotalSeconds:0.0} s");
                return (true, info);
            }
            if (deadline.Elapsed > DrainTimeout) return (false, info);
            await Task.Delay(200, ct);
        }
    }
}
