using BenchmarkDotNet.Running;

namespace TaggedMirror.Micro.Benchmarks;

internal static class Program
{
    // The arguments are BenchmarkDotNet's own (--filter, --job, --artifacts, ...): ops/bench-micro.sh passes them through.
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
