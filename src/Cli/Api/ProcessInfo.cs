namespace TaggedMirror.Cli.Api;

/// <summary>What <c>GET /diag/process</c> answers on the controller and the agents.</summary>
internal sealed record ProcessInfo(int Pid, long PeakWorkingSetBytes, long WorkingSetBytes, long TotalAllocatedBytes);
