using System.Diagnostics;

namespace TaggedMirror.Nbd.Tests.Support;

/// <summary>Runs a real client (qemu-io, nbdinfo, nbdcopy, fio, …) to its end, with a time limit.</summary>
public static class Tool
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
    }

    public static async Task<Result> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null, string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within {timeout ?? TimeSpan.FromMinutes(2)}");
        }
        return new Result(p.ExitCode, await stdout, await stderr);
    }

    /// <summary>Runs and asserts exit code 0, returning stdout.</summary>
    public static async Task<string> CheckAsync(string file, params string[] args)
    {
        var r = await RunAsync(file, args);
        Assert.True(r.ExitCode == 0, $"{file} {string.Join(' ', args)}: {r}");
        return r.Stdout;
    }
}
