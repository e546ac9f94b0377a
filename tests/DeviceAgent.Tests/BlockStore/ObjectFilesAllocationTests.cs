using TaggedMirror.DeviceAgent.BlockStore;

namespace TaggedMirror.DeviceAgent.Tests.BlockStore;

/// <summary>
/// <see cref="ObjectFiles.DataRanges"/> on a real file (/tmp here is tmpfs or ext4): the ranges holding data are exactly
/// where blocks were written and not zeroed since; never-written parts, zeroed (punched) ranges and everything past
/// the file's end are holes; a limit on the ranges stops the answer at the last one given.
/// </summary>
public sealed class ObjectFilesAllocationTests : IDisposable
{
    private const int BlockSize = 4096;
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("tm-alloc-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public void data_is_where_blocks_were_written_and_not_zeroed_and_the_rest_is_holes()
    {
        using var files = new ObjectFiles(_dir.FullName);
        Assert.Equal("until block 256:", Show(files.DataRanges("v.d", 0, 1 << 20, 100))); // no file yet: all holes
        var data = new byte[64 * BlockSize];
        new Random(5).NextBytes(data);
        files.Write("v.d", 16 * BlockSize, data.AsSpan(0, 8 * BlockSize), BlockSize);   // blocks [16, 24)
        files.Write("v.d", 100 * BlockSize, data.AsSpan(0, 20 * BlockSize), BlockSize); // blocks [100, 120)
        files.Write("v.d", 300 * BlockSize, data.AsSpan(0, 1 * BlockSize), BlockSize);  // block 300
        files.Zero("v.d", 104 * BlockSize, 4 * BlockSize, BlockSize);                   // blocks [104, 108) punched
        files.FlushWritten();

        Assert.Equal("until block 512: [16, +8) [100, +4) [108, +12) [300, +1)", Show(files.DataRanges("v.d", 0, 512 * BlockSize, 100)));
        // A window inside: cut at its edges; past the file's end: nothing.
        Assert.Equal("until block 60: [20, +4)", Show(files.DataRanges("v.d", 20 * BlockSize, 40 * BlockSize, 100)));
        Assert.Equal("until block 1000:", Show(files.DataRanges("v.d", 400 * BlockSize, 600 * BlockSize, 100)));
        // At most two ranges: the answer stops where the second ends.
        Assert.Equal("until block 104: [16, +8) [100, +4)", Show(files.DataRanges("v.d", 0, 512 * BlockSize, 2)));
    }

    /// <summary>The answer in blocks, where whole: "until block N: [first, +count) ...".</summary>
    private static string Show((List<(long Offset, long Length)> Data, long Until) answer) =>
        (answer.Until % BlockSize == 0 ? $"until block {answer.Until / BlockSize}:" : $"until {answer.Until}:")
        + string.Concat(answer.Data.Select(d => d.Offset % BlockSize == 0 && d.Length % BlockSize == 0 ? $" [{d.Offset / BlockSize}, +{d.Length / BlockSize})" : $" bytes [{d.Offset}, +{d.Length})"));
}
