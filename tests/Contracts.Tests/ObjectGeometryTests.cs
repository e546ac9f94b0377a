using TaggedMirror.Contracts.Transactions;

namespace TaggedMirror.Contracts.Tests;

public sealed class ObjectGeometryTests
{
    // 100 blocks of 4 KiB with 20 appended past them: blocks [0, 120).
    private static readonly ObjectGeometry Extended = new(4096, 100, 20);

    private static (string? Reason, ObjectGeometry After) Accept(ObjectGeometry current, int blockSize, long objectBlocks)
    {
        var reason = current.Accept(blockSize, objectBlocks, out var after);
        return (reason, after);
    }

    [Fact]
    public void the_same_geometry_leaves_the_object_as_it_is()
    {
        var (reason, after) = Accept(Extended, 4096, 100);
        Assert.Null(reason);
        Assert.Equal(Extended, after);
    }

    [Theory]
    [InlineData(120L)]
    [InlineData(121L)]
    [InlineData(1L << 40)]
    public void a_larger_capacity_covering_the_extension_grows_the_object_and_takes_the_extension_into_the_base(long objectBlocks)
    {
        var (reason, after) = Accept(Extended, 4096, objectBlocks);
        Assert.Null(reason);
        Assert.Equal(new ObjectGeometry(4096, objectBlocks, 0), after);
        Assert.True(after.TotalBlocks >= Extended.TotalBlocks);
    }

    [Fact]
    public void an_object_without_extension_grows_by_any_larger_capacity()
    {
        var (reason, after) = Accept(new ObjectGeometry(512, 64, 0), 512, 65);
        Assert.Null(reason);
        Assert.Equal(new ObjectGeometry(512, 65, 0), after);
    }

    [Theory]
    [InlineData(101L)]
    [InlineData(119L)]
    public void a_grow_that_would_cut_into_the_extension_is_refused(long objectBlocks)
    {
        var (reason, after) = Accept(Extended, 4096, objectBlocks);
        Assert.Equal(
            $"the transaction grows the object from 100 to {objectBlocks} blocks, but its extension reaches block 120: a grow must cover the whole extension",
            reason);
        Assert.Equal(Extended, after);
    }

    [Theory]
    [InlineData(99L)]
    [InlineData(1L)]
    public void a_smaller_capacity_is_refused(long objectBlocks)
    {
        var (reason, after) = Accept(Extended, 4096, objectBlocks);
        Assert.Equal($"the transaction says {objectBlocks} blocks, the object has 100: an object never shrinks", reason);
        Assert.Equal(Extended, after);
    }

    [Theory]
    [InlineData(512, 100L)]
    [InlineData(8192, 100L)]
    [InlineData(512, 800L)]
    public void another_block_size_is_refused_whatever_the_capacity(int blockSize, long objectBlocks)
    {
        var (reason, after) = Accept(Extended, blockSize, objectBlocks);
        Assert.Equal($"the transaction says blocks of {blockSize} bytes, the object has blocks of 4096", reason);
        Assert.Equal(Extended, after);
    }

    [Theory]
    [InlineData(4096, 50L)]
    [InlineData(512, 100L)]
    public void an_object_of_unknown_capacity_takes_the_transaction_geometry_as_a_new_object_does(int blockSize, long objectBlocks)
    {
        // What a rebuild leaves: its replay finds the geometry again from the object's first transaction on.
        var (reason, after) = Accept(new ObjectGeometry(4096, 0, 0), blockSize, objectBlocks);
        Assert.Null(reason);
        Assert.Equal(new ObjectGeometry(blockSize, objectBlocks, 0), after);
    }

    [Fact]
    public void total_blocks_are_base_and_extension()
    {
        Assert.Equal(120, Extended.TotalBlocks);
    }
}
