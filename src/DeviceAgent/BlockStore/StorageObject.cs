namespace TaggedMirror.DeviceAgent.BlockStore;

/// <summary>A storage object's geometry as the device records it (M6). Blocks past <see cref="ObjectBlocks"/> are its extension.</summary>
internal sealed class StorageObject(string id, int blockSize, long objectBlocks, long extensionBlocks, bool needsFullCopy)
{
    public string Id { get; } = id;

    public int BlockSize { get; } = blockSize;

    public long ObjectBlocks { get; } = objectBlocks;

    public long ExtensionBlocks { get; set; } = extensionBlocks;

    public bool NeedsFullCopy { get; set; } = needsFullCopy;

    public long TotalBlocks => ObjectBlocks + ExtensionBlocks;

    public StorageObject Clone() => new(Id, BlockSize, ObjectBlocks, ExtensionBlocks, NeedsFullCopy);
}
