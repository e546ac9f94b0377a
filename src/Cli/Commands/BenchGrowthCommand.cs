using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Npgsql;
using Spectre.Console;
using TaggedMirror.Cli.Api;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm bench-growth</c>: how much PostgreSQL the cluster keeps, after N writes and after an idle period. The tag
/// tables drain (M5), so what stays is history: every table of the schema with its total size (indexes and TOAST
/// included) and rows, and the events by type, at the start, once the writes have drained, and every sample of
/// the idle period. Figures go to a JSON file; nothing is asserted.
/// </summary>
internal static class BenchGrowthCommand
{
    private const int BlockSize = 4096;
    private const long VolumeBytes = 1L << 30;
    private static readonly string[] Mirrors = ["d0", "d1"];
    private static readonly JsonSerializerOptions OutputJson = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static Command Create()
    {
        var controller = CommonOptions.Controller();
        var writes = new Option<int>("--writes") { Description = "Writes of 4 KiB at random offsets of a fresh 1 GiB volume", DefaultValueFactory = _ => 100_000 };
        var concurrency = new Option<int>("--concurrency") { Description = "Writes kept in flight", DefaultValueFactory = _ => 16 };
        var idle = new Option<TimeSpan>("--idle") { Description = "How long to watch the idle cluster after the writes drained (hh:mm:ss)", DefaultValueFactory = _ => TimeSpan.FromMinutes(10) };
        var sample = new Option<TimeSpan>("--sample-every") { Description = "Snapshot interval during the idle period", DefaultValueFactory = _ => TimeSpan.FromMinutes(1) };
        var shortMode = new Option<bool>("--short") { Description = "Smoke run: 2,000 writes and 60 s idle, sampled every 20 s (explicit --writes/--idle win)" };
        var postgres = new Option<string?>("--postgres") { Description = "Npgsql connection string (default: TaggedMirror__Postgres, else the local stack's)" };
        var schema = new Option<string?>("--schema") { Description = "The cluster's schema (default: TaggedMirror__Schema, else tm_local, the local stack's)" };
        var output = new Option<string?>("--output") { Description = "Result file (default bench-results/growth-<UTC timestamp>.json)" };
        var command = new Command("bench-growth", "Measure the PostgreSQL space the cluster keeps after many writes and while idle")
        {
            controller, writes, concurrency, idle, sample, shortMode, postgres, schema, output,
        };
        command.SetAction((parse, ct) => Program.RunAsync(() =>
        {
            var isShort = parse.GetValue(shortMode);
            var writesGiven = parse.GetResult(writes) is { Implicit: false };
            var idleGiven = parse.GetResult(idle) is { Implicit: false };
            var sampleGiven = parse.GetResult(sample) is { Implicit: false };
            var now = DateTime.UtcNow;
            return RunAsync(new Settings(
                TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"),
                "growth-" + now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture),
                isShort && !writesGiven ? 2_000 : parse.GetValue(writes),
                parse.GetValue(concurrency),
                isShort && !idleGiven ? TimeSpan.FromSeconds(60) : parse.GetValue(idle),
                isShort && !sampleGiven ? TimeSpan.FromSeconds(20) : parse.GetValue(sample),
                isShort,
                parse.GetValue(postgres) ?? Environment.GetEnvironmentVariable("TaggedMirror__Postgres") ?? CommonOptions.DefaultPostgres,
                parse.GetValue(schema) ?? Environment.GetEnvironmentVariable("TaggedMirror__Schema") ?? "tm_local",
                parse.GetValue(output) ?? Path.Combine("bench-results", $"growth-{now.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}.json")), ct);
        }));
        return command;
    }

    private sealed record Settings(Uri Controller, string Volume, int Writes, int Concurrency, TimeSpan Idle, TimeSpan SampleEvery, bool Short,
        string Postgres, string Schema, string Output);

    /// <summary>One table of the schema: <c>pg_total_relation_size</c> (heap, indexes, TOAST) and its rows.</summary>
    internal sealed record TableSize(string Table, long Bytes, long Rows);

    internal sealed record Snapshot(string Phase, double Seconds, long TotalBytes, long Events, IReadOnlyList<TableSize> Tables, IReadOnlyDictionary<string, long> EventsByType);

    private static async Task<int> RunAsync(Settings s, CancellationToken ct)
    {
        if (s.Writes < 0) throw new CliException("--writes must not be negative");
        if (s.Concurrency < 1) throw new CliException("--concurrency must be at least 1");
        if (s.Idle < TimeSpan.Zero) throw new CliException("--idle must not be negative");
        if (s.SampleEvery <= TimeSpan.Zero) throw new CliException("--sample-every must be positive");
        // The schema is spliced into SQL as an identifier.
        if (!Names.IsValidSchema(s.Schema))
            throw new CliException($"schema '{s.Schema}' is not {Names.SchemaRule}");

        await using var db = NpgsqlDataSource.Create(s.Postgres);
        using var http = new TmHttp(s.Concurrency, TimeSpan.FromSeconds(60));
        var info = await http.GetControllerAsync(s.Controller, ct);
        var blocks = VolumeBytes / BlockSize;
        if (!await http.CreateVolumeAsync(s.Controller, s.Volume, BlockSize, blocks, Mirrors, ct))
            throw new CliException($"volume {s.Volume} exists already; run again in a second");
        AnsiConsole.MarkupLine($"bench-growth: {s.Writes:N0} writes of {BlockSize} B (C={s.Concurrency}) to [bold]{s.Volume}[/], then {s.Idle} idle, schema {s.Schema}");

        var clock = Stopwatch.StartNew();
        var snapshots = new List<Snapshot> { await SnapshotAsync(db, s.Schema, "start", clock, ct) };
        Print(snapshots[^1]);

        var latencies = new long[Math.Max(1, s.Writes)];
        var data = new byte[BlockSize];
        Random.Shared.NextBytes(data);
        var writeSeconds = s.Writes == 0 ? 0 : await ClosedLoop.RunAsync(s.Writes, s.Concurrency, latencies,
            (i, token) => http.WriteAsync(s.Controller, s.Volume, Random.Shared.NextInt64(0, blocks), data, false, token), ct);
        var drained = await WaitDrainedAsync(http, s, ct);
        snapshots.Add(await SnapshotAsync(db, s.Schema, "after writes", clock, ct));
        Print(snapshots[^1]);
        AnsiConsole.MarkupLine($"writes: {s.Writes:N0} in {writeSeconds:0.0} s; drained {drained:0.0} s later");

        var idleStart = clock.Elapsed;
        while (clock.Elapsed - idleStart < s.Idle)
        {
            var left = s.Idle - (clock.Elapsed - idleStart);
            await Task.Delay(left < s.SampleEvery ? left : s.SampleEvery, ct);
            snapshots.Add(await SnapshotAsync(db, s.Schema, $"idle {(clock.Elapsed - idleStart).TotalSeconds:0} s", clock, ct));
            Print(snapshots[^1]);
        }

        var afterWrites = snapshots[1];
        var last = snapshots[^1];
        // The idle rate is taken from the first idle sample on: right after the writes, autovacuum shrinks the
        // drained tables (tag_table, recon_entries), which would hide the growth behind a one-off drop.
        var idleFrom = snapshots.Count > 3 ? snapshots[2] : afterWrites;
        var idleHours = (last.Seconds - idleFrom.Seconds) / 3600;
        var eventsTableBytes = (Snapshot x) => x.Tables.FirstOrDefault(t => t.Table == "events")?.Bytes ?? 0;
        var result = new
        {
            kind = "growth",
            at = DateTime.UtcNow,
            controller = new { id = info.ControllerId, epoch = info.Epoch },
            settings = new { s.Volume, s.Writes, writeBytes = BlockSize, s.Concurrency, idleSeconds = s.Idle.TotalSeconds, sampleSeconds = s.SampleEvery.TotalSeconds, s.Short, s.Schema },
            writeSeconds,
            drainSeconds = drained,
            bytesPerWrite = s.Writes == 0 ? 0 : (afterWrites.TotalBytes - snapshots[0].TotalBytes) / (double)s.Writes,
            eventsPerWrite = s.Writes == 0 ? 0 : (afterWrites.Events - snapshots[0].Events) / (double)s.Writes,
            idleRateFrom = idleFrom.Phase,
            idleBytesPerHour = idleHours > 0 ? (last.TotalBytes - idleFrom.TotalBytes) / idleHours : 0,
            idleEventsTableBytesPerHour = idleHours > 0 ? (eventsTableBytes(last) - eventsTableBytes(idleFrom)) / idleHours : 0,
            idleEventsPerHour = idleHours > 0 ? (last.Events - idleFrom.Events) / idleHours : 0,
            idleEventsPerHourByType = idleHours > 0
                ? last.EventsByType.ToDictionary(kv => kv.Key, kv => (kv.Value - idleFrom.EventsByType.GetValueOrDefault(kv.Key)) / idleHours)
                : [],
            snapshots,
        };
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(s.Output))!);
        await File.WriteAllTextAsync(s.Output, JsonSerializer.Serialize(result, OutputJson), ct);
        AnsiConsole.MarkupLine($"per write: {result.bytesPerWrite:N0} B, {result.eventsPerWrite:0.00} events; idle (from {Markup.Escape(idleFrom.Phase)}): {result.idleBytesPerHour / (1 << 20):N1} MiB/h in all, events table {result.idleEventsTableBytesPerHour / (1 << 20):N1} MiB/h, {result.idleEventsPerHour:N0} events/h");
        AnsiConsole.MarkupLine($"results: {Markup.Escape(s.Output)}");
        return 0;
    }

    /// <summary>Seconds from the last write's answer until every write is applied on every mirror and every entry retired.</summary>
    private static async Task<double> WaitDrainedAsync(TmHttp http, Settings s, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var v = await http.GetVolumeAsync(s.Controller, s.Volume, ct) ?? throw new CliException($"volume {s.Volume} vanished");
            if (v.InflightWrites == 0 && v.Mirrors.All(m => m.LiveTagEntries == 0)) return clock.Elapsed.TotalSeconds;
            if (clock.Elapsed > TimeSpan.FromMinutes(5)) throw new CliException($"volume {s.Volume} did not drain in 5 minutes");
            await Task.Delay(200, ct);
        }
    }

    internal static async Task<Snapshot> SnapshotAsync(NpgsqlDataSource db, string schema, string phase, Stopwatch clock, CancellationToken ct)
    {
        var tables = new List<TableSize>();
        var names = new List<(string Name, long Bytes)>();
        await using (var cmd = db.CreateCommand("""
            SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = @s AND c.relkind IN ('r', 'p') ORDER BY 1
            """))
        {
            cmd.Parameters.AddWithValue("s", schema);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) names.Add((r.GetString(0), r.GetInt64(1)));
        }
        foreach (var (name, bytes) in names)
        {
            // Exact counts: the tables are small except the events, and a count of those is what this measures.
            await using var cmd = db.CreateCommand($"SELECT count(*) FROM \"{schema}\".\"{name}\"");
            tables.Add(new TableSize(name, bytes, (long)(await cmd.ExecuteScalarAsync(ct))!));
        }
        var byType = new SortedDictionary<string, long>(StringComparer.Ordinal);
        // Marten's event table (the product's own, before Marten, was "events": a count of that would now read nothing).
        if (names.Exists(n => n.Name == "mt_events"))
        {
            await using var cmd = db.CreateCommand($"SELECT type, count(*) FROM \"{schema}\".mt_events GROUP BY type");
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) byType[r.GetString(0)] = r.GetInt64(1);
        }
        return new Snapshot(phase, Math.Round(clock.Elapsed.TotalSeconds, 1), tables.Sum(t => t.Bytes), byType.Values.Sum(), tables, byType);
    }

    private static void Print(Snapshot s)
    {
        var table = new Table().Title($"{Markup.Escape(s.Phase)} (t = {s.Seconds:0} s): {s.TotalBytes / 1024.0 / 1024:N1} MiB, {s.Events:N0} events")
            .AddColumn("table").AddColumn(new TableColumn("bytes").RightAligned()).AddColumn(new TableColumn("rows").RightAligned());
        foreach (var t in s.Tables.Where(t => t.Rows > 0 || t.Bytes > 16384))
            table.AddRow(t.Table, t.Bytes.ToString("N0", CultureInfo.InvariantCulture), t.Rows.ToString("N0", CultureInfo.InvariantCulture));
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine(Markup.Escape(string.Join(", ", s.EventsByType.Select(kv => $"{kv.Key} {kv.Value:N0}"))));
    }
}
