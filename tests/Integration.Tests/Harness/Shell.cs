using System.Diagnostics;

namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>Runs an operator command (a server's stop or start) through <c>/bin/sh</c> and fails the test if it fails.</summary>
internal static class Shell
{
    public static async Task RunAsync(string command)
    {
        var start = new ProcessStartInfo("/bin/sh") { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        using var p = Process.Start(start)!;
        var stderr = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"'{command}' failed: {stderr}");
    }
}
