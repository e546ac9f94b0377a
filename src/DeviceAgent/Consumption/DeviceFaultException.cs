namespace TaggedMirror.DeviceAgent.Consumption;

/// <summary>
/// The block store failed in a way that is about the device, not the transaction (disk full, I/O error): the
/// batch is not recorded, nothing is skipped, and the apply loop retries it with backoff while the device
/// reports itself faulted.
/// </summary>
internal sealed class DeviceFaultException(string message, Exception inner) : Exception(message, inner);
