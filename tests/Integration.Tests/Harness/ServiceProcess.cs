using System.Diagnostics;

namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>A controller or device agent running as its own process (<c>dotnet TaggedMirror.X.dll</c>), as in production.</summary>
internal sealed class ServiceProcess : IAsyncDisposable
{
    private readonly ProcessStartInfo _start;
    private Process? _process;

    public ServiceProcess(string name, string dll, string url, string logDirectory, IReadOnlyDictionary<string, string> environment)
    {
        Name = name;
        Url = url;
        LogFile = Path.Combine(logDirectory, name + ".log");
        _start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = logDirectory,
        };
        _start.ArgumentList.Add(dll);
        _start.ArgumentList.Add("--urls");
        _start.ArgumentList.Add(url);
        foreach (var (k, v) in environment) _start.Environment[k] = v;
        _start.Environment["DOTNET_gcServer"] = "0";
        _start.Environment["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning";
        _start.Environment["Logging__LogLevel__MassTransit"] = "Warning";
    }

    public string Name { get; }

    public string Url { get; }

    public string LogFile { get; }

    public bool Running => _process is { HasExited: false };

    /// <summary>Changes a setting for the next start (null removes it).</summary>
    public void SetEnvironment(string key, string? value)
    {
        if (value is null) _start.Environment.Remove(key);
        else _start.Environment[key] = value;
    }

    /// <summary>Waits for the process to end by itself (e.g. a fault hook killed it) and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        if (_process is null) return 0;
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        var code = _process.ExitCode;
        _process.Dispose();
        _process = null;
        return code;
    }

    public void Start()
    {
        if (Running) throw new InvalidOperationException($"{Name} is already running");
        var log = new StreamWriter(LogFile, append: true) { AutoFlush = true };
        log.WriteLine($"---- start {DateTime.UtcNow:O}");
        var p = Process.Start(_start) ?? throw new InvalidOperationException($"could not start {Name}");
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        p.Exited += (_, _) => { lock (log) log.WriteLine($"---- exited {DateTime.UtcNow:O}"); };
        p.EnableRaisingEvents = true;
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _process = p;
    }

    /// <summary>SIGKILL: no shutdown code runs, as in a crash or power loss of the host process.</summary>
    public void Kill()
    {
        if (_process is null) return;
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.WaitForExit(10_000);
        _process.Dispose();
        _process = null;
    }

    /// <summary>SIGSTOP: the process stalls as a whole (a scheduler pause, a suspended VM) until <see cref="Resume"/>.</summary>
    public void Pause()
    {
        if (_process is { HasExited: false } p) _ = Syscall.Kill(p.Id, Syscall.SigStop);
    }

    /// <summary>SIGCONT: a paused process goes on where it stopped. Harmless on one that is not paused.</summary>
    public void Resume()
    {
        if (_process is { HasExited: false } p) _ = Syscall.Kill(p.Id, Syscall.SigCont);
    }

    /// <summary>SIGTERM and wait for a clean exit; SIGKILL after the timeout.</summary>
    public async Task StopAsync()
    {
        if (_process is null) return;
        if (!_process.HasExited)
        {
            _ = Syscall.Kill(_process.Id, Syscall.SigTerm);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        _process.Dispose();
        _process = null;
    }

    public string Tail(int lines = 40)
    {
        try
        {
            using var fs = new FileStream(LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(fs);
            var all = reader.ReadToEnd().Split('\n');
            return string.Join('\n', all.TakeLast(lines));
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}

internal static partial class Syscall
{
    public const int SigTerm = 15;

    public const int SigStop = 19;

    public const int SigCont = 18;

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill")]
    public static partial int Kill(int pid, int signal);
}
