using FsCheck.Xunit;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Controller.BlockDevice;
using TaggedMirror.Nbd.Protocol;

namespace TaggedMirror.Controller.Tests.BlockDevice;

/// <summary>
/// A device's data ranges turned into NBD extents (<see cref="VolumeExport.Extents"/>): whatever the ranges (any
/// alignment, adjacent, a device that looked at less than the request), the extents start at the offset, follow each
/// other, are whole blocks, never pass the request or how far the device looked, and a byte of data is never inside
/// a hole: a client that skips a hole's bytes must lose nothing.
/// </summary>
public sealed class BlockStatusExtentsProperties
{
    [Property(MaxTest = 500)]
    public bool every_byte_with_data_is_in_a_data_extent_and_the_extents_are_whole_consecutive_blocks(
        byte blockShift, ushort startBlock, byte requestBlocks, (ushort Gap, ushort Length)[] generated, byte lookedShort)
    {
        var blockSize = 512 << (blockShift % 8); // 512 .. 65536
        var offset = (long)startBlock * blockSize;
        var length = (uint)Math.Max(1, (int)requestBlocks) * (uint)blockSize;
        var end = offset + length;
        // Data ranges in byte units, anywhere in the request, in order, not overlapping (as lseek reports them).
        var offsets = new List<long>();
        var lengths = new List<long>();
        var at = offset;
        foreach (var (gap, len) in generated.Take(20))
        {
            var start = at + gap * 37 % (blockSize * 3);
            var stop = Math.Min(end, start + 1 + len * 53 % (blockSize * 4));
            if (start >= end) break;
            offsets.Add(start);
            lengths.Add(stop - start);
            at = stop;
        }
        // The device may have stopped looking early: at the end of its last range, as FileSpace does at its limit.
        var until = lookedShort % 3 == 0 && offsets.Count > 0 ? offsets[^1] + lengths[^1] : end;
        var extents = VolumeExport.Extents(offset, length, new ObjectAllocation([.. offsets], [.. lengths], until), blockSize);

        if (extents.Count == 0 || extents.Any(e => e.Length == 0 || e.Length % blockSize != 0)) return false;
        var covered = extents.Sum(e => (long)e.Length);
        if (covered > length) return false;
        if (until == end && covered != length) return false; // the whole request when the device looked at all of it
        for (var i = 1; i < extents.Count; i++)
        {
            if (extents[i].Status == extents[i - 1].Status) return false; // merged
        }
        // No byte of data inside a hole.
        var pos = offset;
        foreach (var e in extents)
        {
            if (e.Status != NbdAllocation.Data)
            {
                if (e.Status != (NbdAllocation.Hole | NbdAllocation.Zero)) return false;
                for (var r = 0; r < offsets.Count; r++)
                {
                    if (offsets[r] < pos + e.Length && offsets[r] + lengths[r] > pos) return false;
                }
            }
            pos += e.Length;
        }
        return true;
    }

    [Fact]
    public void an_object_with_no_data_is_one_hole_and_data_widens_to_whole_blocks()
    {
        Assert.Equal([new NbdExtent(65536, NbdAllocation.Hole | NbdAllocation.Zero)], VolumeExport.Extents(4096, 65536, new ObjectAllocation([], [], 4096 + 65536), 4096));
        // One byte of data at 5000 makes its block [4096, 8192) data; a range ending mid-block takes the whole block.
        Assert.Equal(
            [new NbdExtent(4096, NbdAllocation.Hole | NbdAllocation.Zero), new NbdExtent(4096, NbdAllocation.Data), new NbdExtent(4096, NbdAllocation.Hole | NbdAllocation.Zero), new NbdExtent(8192, NbdAllocation.Data)],
            VolumeExport.Extents(0, 20480, new ObjectAllocation([5000, 12288], [1, 5000], 20480), 4096));
        // A device that looked at less than a block: the first block is data, which is always true.
        Assert.Equal([new NbdExtent(4096, NbdAllocation.Data)], VolumeExport.Extents(0, 65536, new ObjectAllocation([0], [100], 100), 4096));
    }
}
