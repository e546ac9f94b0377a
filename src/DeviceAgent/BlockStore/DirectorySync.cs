using System.ComponentModel;
using System.Runtime.InteropServices;

namespace TaggedMirror.DeviceAgent.BlockStore;

/// <summary>
/// fsync of a directory, so that a file created in it (its directory entry) survives a power loss: fsync of
/// the file makes its data durable, not its name (Linux <c>fsync(2)</c>: "an explicit fsync() on a file
/// descriptor for the directory is also needed"). .NET cannot do it: <c>File.OpenHandle</c> refuses a directory.
/// </summary>
internal static partial class DirectorySync
{
    private const int ORdOnly = 0;
    private const int OCloExec = 0x80000;

    // O_DIRECTORY differs per architecture; without it open() still opens a directory, only without the check.
    private static readonly int ODirectory = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 or Architecture.X86 => 0x10000,
        Architecture.Arm64 or Architecture.Arm => 0x4000,
        _ => 0,
    };

    /// <summary>Makes <paramref name="directory"/>'s entries durable. Does nothing where directories cannot be synced (Windows).</summary>
    public static void Fsync(string directory)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD()) return;
        var fd = Open(directory, ORdOnly | OCloExec | ODirectory);
        if (fd < 0) throw Error($"open {directory}");
        try
        {
            if (FsyncFd(fd) != 0) throw Error($"fsync {directory}");
        }
        finally
        {
            _ = Close(fd);
        }
    }

    private static IOException Error(string what)
    {
        var errno = Marshal.GetLastPInvokeError();
        return new IOException($"{what}: {new Win32Exception(errno).Message}", errno);
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int FsyncFd(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
