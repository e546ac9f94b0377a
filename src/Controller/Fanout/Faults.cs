using System.Diagnostics;

namespace TaggedMirror.Controller.Fanout;

/// <summary>Carries out <see cref="FaultOptions"/>.</summary>
internal static class Faults
{
    /// <summary>Called after each copy is enqueued. Kills the process between the copies of the chosen write.</summary>
    public static void AfterCopy(ControllerOptions options, long seq, DeviceLog log)
    {
        if (options.Faults.StopAfterFirstCopyOfWrite != seq) return;
        // Make sure the first copy really is in the log, then die without running any shutdown code.
        log.Flush(TimeSpan.FromSeconds(10));
        Console.Error.WriteLine($"FAULT: killing the controller after the first copy of write {seq}");
        Process.GetCurrentProcess().Kill();
    }
}
