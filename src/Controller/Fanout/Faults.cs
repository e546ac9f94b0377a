using System.Diagnostics;

namespace TaggedMirror.Controller.Fanout;

/// <summary>Carries out <see cref="FaultOptions"/>.</summary>
internal static class Faults
{
    /// <summary>
    /// Called right after a write's first copy is handed to the log, under the volume's lock. Kills the process there,
    /// between the copies of the chosen write: the first write or append (never a repair, which may take early sequences
    /// of a new epoch) at or past <see cref="FaultOptions.StopAfterFirstCopyOfWrite"/>. Or stalls the write chosen by
    /// <see cref="FaultOptions.StallAfterSendAtBlock"/> there.
    /// </summary>
    public static void AfterFirstCopy(ControllerOptions options, Contracts.Transactions.TransactionKind kind, long firstBlock, long seq, DeviceLog log)
    {
        var at = options.Faults.StopAfterFirstCopyOfWrite;
        if (at > 0 && seq >= at && kind != Contracts.Transactions.TransactionKind.Repair)
        {
            // Make sure the first copy really is in the log, then die without running any shutdown code.
            log.Flush(TimeSpan.FromSeconds(10));
            Console.Error.WriteLine($"FAULT: killing the controller after the first copy of write {seq}");
            Process.GetCurrentProcess().Kill();
        }
        if (kind == Contracts.Transactions.TransactionKind.Write && firstBlock == options.Faults.StallAfterSendAtBlock)
        {
            Console.Error.WriteLine($"FAULT: stalling the write at block {firstBlock} for {options.Faults.StallFor} after its first copy was sent");
            Thread.Sleep(options.Faults.StallFor);
        }
    }

    /// <summary>Called after a write's lease check, before its tag is taken: stalls the chosen write (see <see cref="FaultOptions.StallWriteAtBlock"/>).</summary>
    public static Task BeforeEnqueueAsync(ControllerOptions options, Contracts.Transactions.TransactionKind kind, long firstBlock, CancellationToken ct)
    {
        if (kind != Contracts.Transactions.TransactionKind.Write || firstBlock != options.Faults.StallWriteAtBlock) return Task.CompletedTask;
        Console.Error.WriteLine($"FAULT: stalling the write at block {firstBlock} for {options.Faults.StallFor}");
        return Task.Delay(options.Faults.StallFor, ct);
    }
}
