using System.Diagnostics;

namespace TaggedMirror.Cli.Commands;

/// <summary>Latency percentiles in milliseconds, from Stopwatch-tick samples.</summary>
internal sealed record LatencySummary(int Samples, double MeanMs, double P50Ms, double P90Ms, double P99Ms, double P999Ms, double MaxMs)
{
    public static LatencySummary FromTicks(long[] ticks)
    {
        ArgumentOutOfRangeException.ThrowIfZero(ticks.Length);
        var sorted = (long[])ticks.Clone();
        Array.Sort(sorted);
        return new LatencySummary(sorted.Length, Ms(sorted.Average()), Ms(At(sorted, 0.50)), Ms(At(sorted, 0.90)), Ms(At(sorted, 0.99)),
            Ms(At(sorted, 0.999)), Ms(sorted[^1]));
    }

    // Nearest rank: the smallest sample with at least p of the samples at or below it.
    private static long At(long[] sorted, double p) => sorted[Math.Max(0, (int)Math.Ceiling(p * sorted.Length) - 1)];

    private static double Ms(double ticks) => Math.Round(ticks * 1000.0 / Stopwatch.Frequency, 3);
}
