using System.Globalization;
using TaggedMirror.DeviceAgent.BlockStore;

namespace TaggedMirror.DeviceAgent.Tests.BlockStore;

/// <summary>
/// <see cref="ObjectFiles.Zero"/>: a zeroed range reads as zeros, the blocks around it keep their bytes, its recorded
/// checksums are a zero block's, the file keeps its size, and its space goes back to the file system (a punched hole).
/// </summary>
public sealed class ObjectFilesZeroTests : IDisposable
{
    private const int BlockSize = 4096;
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("tm-zero-");

    public void Dispose() => _dir.Delete(recursive: true);

    private static long Allocated(string path) =>
        long.Parse(RunStat(path), CultureInfo.InvariantCulture) * 512;

    private static string RunStat(string path)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%b", path]) { RedirectStandardOutput = true })!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return output.Trim();
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(0, 64)]
    [InlineData(3, 250)]
    [InlineData(255, 1)]
    public void a_zeroed_range_reads_as_zeros_and_its_neighbours_and_checksums_are_right(int first, int count)
    {
        using var files = new ObjectFiles(_dir.FullName);
        var data = new byte[256 * BlockSize];
        new Random(first * 1000 + count).NextBytes(data);
        files.Write("v.d", 0, data, BlockSize);
        files.FlushWritten();
        var path = files.PathOf("v.d");
        var allocatedBefore = Allocated(path);

        files.Zero("v.d", (long)first * BlockSize, (long)count * BlockSize, BlockSize);
        files.FlushWritten();

        var expected = data.ToArray();
        expected.AsSpan(first * BlockSize, count * BlockSize).Clear();
        var read = new byte[data.Length];
        files.Read("v.d", 0, read);
        Assert.True(read.AsSpan().SequenceEqual(expected), "the object does not read as its bytes with the range zeroed");
        Assert.Equal(data.Length, new FileInfo(path).Length);
        var (actual, recorded) = files.Checksums("v.d", 0, 256, BlockSize);
        Assert.Equal(actual, recorded);
        Assert.Equal(TaggedMirror.Contracts.Api.BlockChecksums.Of(new byte[BlockSize]), recorded[first]);
        // A hole where the file system can punch one: /tmp here is tmpfs or ext4, both of which can.
        Assert.True(Allocated(path) <= allocatedBefore - (long)count * BlockSize,
            $"{Allocated(path)} bytes allocated after zeroing {count} blocks, {allocatedBefore} before");
    }

    [Fact]
    public void a_zero_past_the_files_end_keeps_its_size_and_reads_as_zeros_and_a_later_write_lands_after_it()
    {
        using var files = new ObjectFiles(_dir.FullName);
        files.Write("v.d", 0, new byte[BlockSize].Select(_ => (byte)0x7e).ToArray(), BlockSize);
        // 1 GiB past the end: no space, no data written, checksums for each of its 262,144 blocks.
        files.Zero("v.d", 16L * BlockSize, 1L << 30, BlockSize);
        files.FlushWritten();
        Assert.Equal(BlockSize, new FileInfo(files.PathOf("v.d")).Length);
        var tail = new byte[BlockSize];
        files.Read("v.d", (1L << 30) + 15 * BlockSize, tail);
        Assert.True(tail.All(b => b == 0));
        var (_, recorded) = files.Checksums("v.d", (1L << 30) / BlockSize + 15, 1, BlockSize);
        Assert.Equal(TaggedMirror.Contracts.Api.BlockChecksums.Of(new byte[BlockSize]), recorded[0]);

        files.Write("v.d", 20L * BlockSize, new byte[BlockSize].Select(_ => (byte)0x42).ToArray(), BlockSize);
        var block = new byte[BlockSize];
        files.Read("v.d", 20L * BlockSize, block);
        Assert.True(block.All(b => b == 0x42));
        files.Read("v.d", 19L * BlockSize, block);
        Assert.True(block.All(b => b == 0));
    }

    [Theory]
    [InlineData(1, BlockSize)]
    [InlineData(BlockSize, 1)]
    [InlineData(BlockSize, 0)]
    [InlineData(-BlockSize, BlockSize)]
    [InlineData(0, -BlockSize)]
    public void a_zero_of_partial_blocks_or_a_negative_range_is_refused_and_changes_nothing(long offset, long length)
    {
        using var files = new ObjectFiles(_dir.FullName);
        var data = new byte[4 * BlockSize];
        new Random(3).NextBytes(data);
        files.Write("v.d", 0, data, BlockSize);
        Assert.Throws<ArgumentException>(() => files.Zero("v.d", offset, length, BlockSize));
        var read = new byte[data.Length];
        files.Read("v.d", 0, read);
        Assert.True(read.AsSpan().SequenceEqual(data));
    }
}
