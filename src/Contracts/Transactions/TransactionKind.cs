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

    /// <summary>
    /// A new owner of a volume took it (its lease's <see cref="TransactionHeader.OwnerEpoch"/>): from here on in
    /// this partition, the device refuses the object's writes from older owner epochs. Carries no data; the tag is
    /// the new owner's (controller, epoch, 0). Keyed by the object id like the object's writes, so it lands in
    /// the one partition every write to the object goes to.
    /// </summary>
    Fence = 5,

    /// <summary>
    /// Remove the storage object from the device: its files, its geometry, its live tag-table entries. Carries no
    /// data (<see cref="TransactionHeader.BlockCount"/> 0). Keyed by the object id like the object's writes, so it
    /// lands in the partition every write to the object goes to, after them. Subject to owner fencing like a write:
    /// a delete from an older <see cref="TransactionHeader.OwnerEpoch"/> than the device has seen for the object is
    /// refused. The device records <c>object_deleted</c>, also for an object it does not have.
    /// </summary>
    Delete = 6,

    /// <summary>
    /// Zero a block range of a storage object (a discard, NBD's <c>TRIM</c> and <c>WRITE_ZEROES</c>): applied like a
    /// <see cref="Write"/> of that many zero blocks, tagged, fenced and acknowledged like one, but it carries no data,
    /// so a range of gigabytes costs its log a header, not its bytes. The device may give the range's space back to
    /// its file system.
    /// </summary>
    Zero = 7,
}
