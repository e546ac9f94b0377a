namespace TaggedMirror.Contracts.Transactions;

/// <summary>
/// A storage object's geometry as a device records it: bytes per block, base capacity, and the extension that
/// appends (and repairs of them) added past the base. Every write, append and repair carries the base capacity its
/// sender knows (<see cref="TransactionHeader.ObjectBlocks"/>); <see cref="Accept"/> is the one rule for how a
/// device's object follows it.
/// </summary>
/// <param name="BlockSize">Bytes per block.</param>
/// <param name="ObjectBlocks">Base capacity in blocks; 0 while not known (a rebuild forgot it, its replay finds it again).</param>
/// <param name="ExtensionBlocks">Blocks past the base.</param>
public readonly record struct ObjectGeometry(int BlockSize, long ObjectBlocks, long ExtensionBlocks)
{
    /// <summary>Base and extension: the blocks the object has.</summary>
    public long TotalBlocks => ObjectBlocks + ExtensionBlocks;

    /// <summary>
    /// The geometry after a transaction that says <paramref name="blockSize"/> and <paramref name="objectBlocks"/>,
    /// or why the transaction does not fit the object (it is then refused, and the object stays as it is).
    /// <list type="bullet">
    /// <item>The same block size and capacity: unchanged.</item>
    /// <item>The same block size and a larger capacity that covers the whole extension: the object grows (a volume
    /// grown by its owner). The base becomes <paramref name="objectBlocks"/> and the extension 0: its blocks keep
    /// their numbers and are inside the base now. A block is stored at its number times the block size, so no byte
    /// moves.</item>
    /// <item>A capacity below the object's (it never shrinks), one past it that would cut into the extension
    /// (blocks appended past the new base's end would fall in neither), or another block size: refused.</item>
    /// <item>An object of unknown capacity takes the transaction's geometry, as a new object does.</item>
    /// </list>
    /// </summary>
    public string? Accept(int blockSize, long objectBlocks, out ObjectGeometry after)
    {
        after = this;
        if (ObjectBlocks == 0)
        {
            after = new ObjectGeometry(blockSize, objectBlocks, 0);
            return null;
        }
        if (blockSize != BlockSize)
            return $"the transaction says blocks of {blockSize} bytes, the object has blocks of {BlockSize}";
        if (objectBlocks == ObjectBlocks)
            return null;
        if (objectBlocks < ObjectBlocks)
            return $"the transaction says {objectBlocks} blocks, the object has {ObjectBlocks}: an object never shrinks";
        if (objectBlocks < TotalBlocks)
            return $"the transaction grows the object from {ObjectBlocks} to {objectBlocks} blocks, but its extension reaches block {TotalBlocks}: a grow must cover the whole extension";
        after = new ObjectGeometry(BlockSize, objectBlocks, 0);
        return null;
    }
}
