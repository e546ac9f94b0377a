using System.Diagnostics;

namespace TaggedMirror.Integration.Tests.Harness;

/// <summary>
/// A real small file system (tmpfs of a given size) at a fresh directory, so a device can really run out
/// of space (<c>ENOSPC</c> from the kernel, not a simulated exception). Needs root, or sudo without a password,
/// as <c>ops/setup.sh</c> does. <see cref="ResizeAsync"/> gives space back without unmounting.
/// </summary>
internal sealed class TmpfsMount : IAsyncDisposable
{
    private TmpfsMount(string path) => Path = path;

    public string Path { get; }

    public static async Task<TmpfsMount> CreateAsync(string path, long bytes)
    {
        System.IO.Directory.CreateDirectory(path);
        await RunAsync("mount", "-t", "tmpfs", "-o", $"size={bytes},mode=0755", "tmpfs", path);
        return new TmpfsMount(path);
    }

    public Task ResizeAsync(long bytes) => RunAsync("mount", "-o", $"remount,size={bytes}", Path);

    private static async Task RunAsync(string command, params string[] args)
    {
        var asRoot = Environment.UserName == "root";
        var start = new ProcessStartInfo(asRoot ? command : "sudo")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        if (!asRoot)
        {
            start.ArgumentList.Add("-n");
            start.ArgumentList.Add(command);
        }
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var stderr = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"{command} {string.Join(' ', args)} failed ({p.ExitCode}): {stderr} — a tmpfs needs root or passwordless sudo");
    }

    public async ValueTask DisposeAsync()
    {
        // Lazy: the agent that used it is stopped by now, but a late handle must not leave the mount behind.
        await RunAsync("umount", "-l", Path);
        try { System.IO.Directory.Delete(Path); } catch (IOException) { }
    }
}
