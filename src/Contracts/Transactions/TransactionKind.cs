namespace TaggedMirror.Contracts.Transactions;

/// <summary>What a transaction on a device topic asks the device to do.</summary>
public enum TransactionKind : byte
{
    /// <summary>Write a block range of a storage object.</summary>
    Write = 1,

    /// <summary>Append blocks to the object's extension, where the header places them; the device records the range as an extension.</summary>
    Append = 2,

    /// <summary>A controller's copy of a range from another mirror (resync); applied like a write.</summary>
    Repair = 3,

    /// <summary>Every write of (controller, epoch) up to a sequence has been delivered or has failed. Carries no data.</summary>
    Barrier = 4,
}
