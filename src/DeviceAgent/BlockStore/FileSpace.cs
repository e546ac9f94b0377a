using System.ComponentModel;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace TaggedMirror.DeviceAgent.BlockStore;

/// <summary>
/// Gives a file's range back to its file system: Linux <c>fallocate(2)</c> with <c>FALLOC_FL_PUNCH_HOLE |
/// FALLOC_FL_KEEP_SIZE</c>, after which the range reads as zeros and holds no space. .NET has no call for it.
/// </summary>
internal static partial class FileSpace
{
    private const int KeepSize = 0x01;
    private const int PunchHole = 0x02;
    private const int EOPNOTSUPP = 95;
    private const int ENOSYS = 38;

    /// <summary>
    /// Punches a hole over [<paramref name="offset"/>, +<paramref name="length"/>). False where the file system (or
    /// the platform) cannot: the caller writes zeroes instead. Other failures throw.
    /// </summary>
    public static bool TryPunchHole(SafeFileHandle handle, long offset, long length)
    {
        if (!OperatingSystem.IsLinux()) return false;
        if (Fallocate(handle, PunchHole | KeepSize, offset, length) == 0) return true;
        var errno = Marshal.GetLastPInvokeError();
        if (errno is EOPNOTSUPP or ENOSYS) return false;
        throw new IOException($"fallocate (punch hole) [{offset}, +{length}): {new Win32Exception(errno).Message}", errno);
    }

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    private static partial int Fallocate(SafeFileHandle fd, int mode, long offset, long length);
}
