using System.Diagnostics;

namespace TaggedMirror.Controller.Fanout;

/// <summary>Carries out <see cref="FaultOptions"/>.</summary>
internal static class Faults
{
    /// <summary>
    /// Called after each copy is enqueued. Kills the process between the copies of the chosen write: the first
    /// write or append (never a repair, which may take early sequences of a new epoch) at or past the sequence.
    /// </summary>
    public static void AfterCopy(ControllerOptions options, Contracts.Transactions.TransactionKind kind, long seq, DeviceLog log)
    {
        var at = options.Faults.StopAfterFirstCopyOfWrite;
        if (at <= 0 || seq < at || kind == Contracts.Transactions.TransactionKind.Repair) return;
        // Make sure the first copy really is in the log, then die without running any shutdown code.
        log.Flush(TimeSpan.FromSeconds(10));
        Console.Error.WriteLine($"FAULT: killing the controller after the first copy of write {seq}");
        Process.GetCurrentProcess().Kill();
    }

    /// <summary>Called right after a copy is handed to the log, under the volume's lock (see <see cref="FaultOptions.StallAfterSendAtBlock"/>).</summary>
    public static void AfterSend(ControllerOptions options, Contracts.Transactions.TransactionKind kind, long firstBlock, bool first)
    {
        if (!first || kind != Contracts.Transactions.TransactionKind.Write || firstBlock != options.Faults.StallAfterSendAtBlock) return;
        Console.Error.WriteLine($"FAULT: stalling the write at block {firstBlock} for {options.Faults.StallFor} after a copy was sent");
        Thread.Sleep(options.Faults.StallFor);
    }

    /// <summary>Called after a write's lease check, before its tag is taken: stalls the chosen write (see <see cref="FaultOptions.StallWriteAtBlock"/>).</summary>
    public static Task BeforeEnqueueAsync(ControllerOptions options, Contracts.Transactions.TransactionKind kind, long firstBlock, CancellationToken ct)
    {
        if (kind != Contracts.Transactions.TransactionKind.Write || firstBlock != options.Faults.StallWriteAtBlock) return Task.CompletedTask;
        Console.Error.WriteLine($"FAULT: stalling the write at block {firstBlock} for {options.Faults.StallFor}");
        return Task.Delay(options.Faults.StallFor, ct);
    }
}
