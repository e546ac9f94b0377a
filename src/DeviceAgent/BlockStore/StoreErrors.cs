namespace TaggedMirror.DeviceAgent.BlockStore;

/// <summary>
/// Sorts block-store I/O errors into the device's fault and the transaction's. On Unix .NET puts the errno in
/// <see cref="Exception.HResult"/> of the <see cref="IOException"/> it throws; on Windows it is an HRESULT.
/// </summary>
internal static class StoreErrors
{
    private const int Efbig = 27;
    private const int Enospc = 28;
    private const int Edquot = 122;
    private const int ErrorHandleDiskFull = unchecked((int)0x80070027);
    private const int ErrorDiskFull = unchecked((int)0x80070070);
    private const int ErrorFileTooLarge = unchecked((int)0x800700DF);

    /// <summary>No space (or quota) left: the device must stop and wait for space, never skip.</summary>
    public static bool IsNoSpace(IOException ex) =>
        ex.HResult is Enospc or Edquot or ErrorHandleDiskFull or ErrorDiskFull;

    /// <summary>
    /// The file system refuses this write's offset (past its largest file): the same transaction fails the same
    /// way on every retry, so it is refused like any other poison transaction.
    /// </summary>
    public static bool IsTransactionSpecific(IOException ex) => ex.HResult is Efbig or ErrorFileTooLarge;

    /// <summary>A person's sentence for a device fault; "no space left" leads when that is what it is.</summary>
    public static string Describe(IOException ex, string directory) => IsNoSpace(ex)
        ? $"no space left in the data directory {directory}: {ex.Message}"
        : $"block store I/O error in {directory}: {ex.Message}";
}
