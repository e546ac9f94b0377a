using System.ComponentModel;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace TaggedMirror.DeviceAgent.BlockStore;

/// <summary>
/// A file's space: a range given back to its file system (Linux <c>fallocate(2)</c> with <c>FALLOC_FL_PUNCH_HOLE |
/// FALLOC_FL_KEEP_SIZE</c>, after which the range reads as zeros and holds no space), and where its data and holes are
/// (<c>lseek(2)</c>, <c>SEEK_DATA</c>/<c>SEEK_HOLE</c>). .NET has no call for either.
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

    private const int SeekDataWhence = 3;
    private const int SeekHoleWhence = 4;
    private const int ENXIO = 6;

    /// <summary>
    /// The parts of [<paramref name="offset"/>, <paramref name="end"/>) that hold data, by <c>lseek(2)</c>'s
    /// <c>SEEK_DATA</c>/<c>SEEK_HOLE</c>, at most <paramref name="maxRanges"/>; and how far they were looked for (the end, or
    /// the end of the last range when there were more). Everything else in the part looked at is a hole and reads as zeros.
    /// A file system that cannot tell reports data up to the file's end, and the platforms without <c>lseek</c> all data.
    /// </summary>
    public static (List<(long Offset, long Length)> Data, long Until) DataRanges(SafeFileHandle handle, long offset, long end, int maxRanges)
    {
        if (!OperatingSystem.IsLinux()) return ([(offset, end - offset)], end);
        var ranges = new List<(long, long)>();
        var at = offset;
        while (at < end)
        {
            if (ranges.Count == maxRanges) return (ranges, at);
            var data = Lseek(handle, at, SeekDataWhence);
            if (data < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == ENXIO) break; // no data from here to the file's end
                throw new IOException($"lseek (SEEK_DATA) at {at}: {new Win32Exception(errno).Message}", errno);
            }
            if (data >= end) break;
            var hole = Lseek(handle, data, SeekHoleWhence);
            if (hole < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new IOException($"lseek (SEEK_HOLE) at {data}: {new Win32Exception(errno).Message}", errno);
            }
            hole = Math.Min(hole, end);
            ranges.Add((data, hole - data));
            at = hole;
        }
        return (ranges, end);
    }

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long Lseek(SafeFileHandle fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    private static partial int Fallocate(SafeFileHandle fd, int mode, long offset, long length);
}
