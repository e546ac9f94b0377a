using System.Globalization;
using Npgsql;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// Where the CPU went during a measured phase, per process of the local stack: the controller and each agent, the
/// PostgreSQL backends serving each of them (matched by the application name every TaggedMirror connection carries,
/// <c>tm-&lt;component&gt;-&lt;pid&gt;</c>), PostgreSQL as a whole, RabbitMQ, the development broker, the benchmark
/// itself, and the machine. Read from <c>/proc</c> (the benchmark runs on the stack's machine); a process it cannot
/// see is left out, not guessed.
/// </summary>
internal sealed class CpuAccounting
{
    // USER_HZ: the unit of /proc/[pid]/stat's times; 100 on every Linux build that matters (it is part of the ABI).
    private const double TicksPerSecond = 100;

    private readonly Dictionary<string, int> _services;
    private readonly NpgsqlDataSource? _postgres;

    /// <param name="services">Name (<c>controller</c>, <c>agent-d0</c>, …) → pid, from their <c>/diag/process</c>.</param>
    /// <param name="postgres">The stack's database, to match backends to processes; null to skip that.</param>
    public CpuAccounting(IReadOnlyDictionary<string, ProcessDiagnostics?> services, NpgsqlDataSource? postgres)
    {
        _services = services.Where(kv => kv.Value is not null).ToDictionary(kv => kv.Key, kv => kv.Value!.Pid, StringComparer.Ordinal);
        _postgres = postgres;
    }

    public sealed record Snapshot(Dictionary<string, double> Processes, Dictionary<int, (string Owner, double Seconds)> Backends, double MachineBusySeconds);

    public async Task<Snapshot> TakeAsync(CancellationToken ct)
    {
        var processes = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (name, pid) in _services)
            if (Times(pid) is { } t) processes[name] = t.Own;
        double postgres = 0, rabbit = 0, broker = 0;
        var sawPostgres = false;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)) continue;
            var t = Times(pid);
            if (t is null) continue;
            switch (t.Value.Comm)
            {
                case "postgres":
                    sawPostgres = true;
                    // The postmaster's children times hold every backend that exited (it reaps them).
                    postgres += t.Value.Own + (IsPostmaster(t.Value.ParentPid) ? t.Value.Children : 0);
                    break;
                case "beam.smp":
                    rabbit += t.Value.Own;
                    break;
                default:
                    if ((t.Value.Comm == "dotnet" || t.Value.Comm.StartsWith("TaggedMirror", StringComparison.Ordinal)) && CommandLine(pid).Contains("TaggedMirror.DevKafka", StringComparison.Ordinal))
                        broker += t.Value.Own;
                    break;
            }
        }
        if (sawPostgres) processes["postgresql (all)"] = postgres;
        if (rabbit > 0) processes["rabbitmq"] = rabbit;
        if (broker > 0) processes["kafka (dev broker)"] = broker;
        using (var self = System.Diagnostics.Process.GetCurrentProcess())
            processes["tm-bench"] = self.TotalProcessorTime.TotalSeconds;
        return new Snapshot(processes, await BackendsAsync(ct), MachineBusy());
    }

    /// <summary>CPU seconds per name between two snapshots, backends added to their owner as <c>&lt;owner&gt; postgresql</c>.</summary>
    public static Dictionary<string, double> Between(Snapshot before, Snapshot after)
    {
        var used = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (name, seconds) in after.Processes)
            if (before.Processes.TryGetValue(name, out var was)) used[name] = Math.Max(0, seconds - was);
        foreach (var (pid, (owner, seconds)) in after.Backends)
        {
            // A backend opened during the phase counts whole; one closed during it is lost here (still in "postgresql (all)").
            var was = before.Backends.TryGetValue(pid, out var b) && b.Owner == owner ? b.Seconds : 0;
            var key = owner + " postgresql";
            used[key] = used.GetValueOrDefault(key) + Math.Max(0, seconds - was);
        }
        used["machine (all cores)"] = Math.Max(0, after.MachineBusySeconds - before.MachineBusySeconds);
        return used;
    }

    private async Task<Dictionary<int, (string, double)>> BackendsAsync(CancellationToken ct)
    {
        var backends = new Dictionary<int, (string, double)>();
        if (_postgres is null) return backends;
        var owners = _services.ToDictionary(kv => kv.Value, kv => kv.Key);
        try
        {
            await using var cmd = _postgres.CreateCommand("SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE 'tm-%'");
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                var pid = reader.GetInt32(0);
                var app = reader.GetString(1);
                var dash = app.LastIndexOf('-');
                if (dash < 0 || !int.TryParse(app.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var client)) continue;
                if (!owners.TryGetValue(client, out var owner) || Times(pid) is not { } t) continue;
                backends[pid] = (owner, t.Own);
            }
        }
        catch (NpgsqlException)
        {
            // No database access from here: the per-process PostgreSQL share is left out; the total is still counted.
        }
        return backends;
    }

    private readonly record struct ProcTimes(string Comm, int ParentPid, double Own, double Children);

    /// <summary>/proc/[pid]/stat: utime+stime and cutime+cstime, in seconds; null when the process is gone or unreadable.</summary>
    private static ProcTimes? Times(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        // "pid (comm) state ppid …": the name may hold spaces and parentheses, so fields are counted from the last ')'.
        var open = text.IndexOf('(', StringComparison.Ordinal);
        var close = text.LastIndexOf(')');
        if (open < 0 || close < open) return null;
        var fields = text[(close + 2)..].Split(' ');
        if (fields.Length < 15) return null;
        static double Field(string f) => long.Parse(f, CultureInfo.InvariantCulture) / TicksPerSecond;
        return new ProcTimes(text[(open + 1)..close], int.Parse(fields[1], CultureInfo.InvariantCulture),
            Field(fields[11]) + Field(fields[12]), Field(fields[13]) + Field(fields[14]));
    }

    private static bool IsPostmaster(int parentPid) => Times(parentPid)?.Comm != "postgres";

    private static string CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    /// <summary>Busy CPU seconds of the whole machine (all cores): /proc/stat's first line less idle and iowait.</summary>
    private static double MachineBusy()
    {
        try
        {
            var cpu = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // cpu user nice system idle iowait irq softirq steal …
            var values = cpu.Skip(1).Take(8).Select(v => long.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            return (values.Sum() - values[3] - values[4]) / TicksPerSecond;
        }
        catch (Exception ex) when (ex is IOException or FormatException or UnauthorizedAccessException)
        {
            return 0;
        }
    }
}
