namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>Runs the command line (TaggedMirror.Cli.dll) as a user would: its exit code, and what it printed.</summary>
internal static class TmCli
{
    public static async Task<(int Code, string Output)> RunAsync(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Paths.Deployable("Cli"));
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["COLUMNS"] = "400"; // one outcome, one line
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) start.Environment[k] = v;
        using var p = System.Diagnostics.Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await p.WaitForExitAsync(timeout.Token);
        return (p.ExitCode, await stdout + await stderr);
    }
}
