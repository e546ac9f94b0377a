using TaggedMirror.Contracts.Transactions;

namespace TaggedMirror.DeviceAgent.BlockStore;

/// <summary>A storage object's geometry as the device records it (M6). Blocks past <see cref="ObjectBlocks"/> are its extension.</summary>
internal sealed class StorageObject(string id, int blockSize, long objectBlocks, long extensionBlocks, bool needsFullCopy)
{
    public string Id { get; } = id;

    public int BlockSize { get; private set; } = blockSize;

    public long ObjectBlocks { get; private set; } = objectBlocks;

    public long ExtensionBlocks { get; private set; } = extensionBlocks;

    public bool NeedsFullCopy { get; set; } = needsFullCopy;

    public long TotalBlocks => ObjectBlocks + ExtensionBlocks;

    public ObjectGeometry Geometry => new(BlockSize, ObjectBlocks, ExtensionBlocks);

    /// <summary>Takes a geometry (one <see cref="ObjectGeometry.Accept"/> gave, or a longer extension); true when it changed.</summary>
    public bool Take(ObjectGeometry geometry)
    {
        if (geometry == Geometry) return false;
        (BlockSize, ObjectBlocks, ExtensionBlocks) = (geometry.BlockSize, geometry.ObjectBlocks, geometry.ExtensionBlocks);
        return true;
    }

    public StorageObject Clone() => new(Id, BlockSize, ObjectBlocks, ExtensionBlocks, NeedsFullCopy);
}
