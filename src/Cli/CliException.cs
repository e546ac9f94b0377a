namespace TaggedMirror.Cli;

/// <summary>A failure to report in one sentence and exit non-zero, without a stack trace.</summary>
internal sealed class CliException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
