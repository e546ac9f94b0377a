using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Api;

/// <summary>
/// The API key the CLI presents: <c>$TM_API_KEY</c>, else the first line of the file <c>$TM_KEY_FILE</c> names, else of
/// <see cref="AccessHeaders.DefaultKeyFile"/> (where a controller on this host writes the operator key at its first
/// start). None found: requests go without one, and the controller's 401 says how to give one.
/// </summary>
internal static class KeySource
{
    public static string? Find()
    {
        if (Environment.GetEnvironmentVariable(AccessHeaders.KeyEnvironment) is { Length: > 0 } key) return key.Trim();
        var file = FilePath();
        try
        {
            return File.Exists(file) ? File.ReadLines(file).FirstOrDefault()?.Trim() is { Length: > 0 } line ? line : null : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Where the key came from, or where it was looked for: for the sentence of a 401.</summary>
    public static string Describe() =>
        Environment.GetEnvironmentVariable(AccessHeaders.KeyEnvironment) is { Length: > 0 }
            ? $"the key came from ${AccessHeaders.KeyEnvironment}"
            : File.Exists(FilePath())
                ? $"the key came from {FilePath()}"
                : $"no key: set ${AccessHeaders.KeyEnvironment}, or ${AccessHeaders.KeyFileEnvironment} to a file holding one; a controller on this host writes its operator key to {AccessHeaders.DefaultKeyFile}";

    private static string FilePath() =>
        Environment.GetEnvironmentVariable(AccessHeaders.KeyFileEnvironment) is { Length: > 0 } file ? file : AccessHeaders.DefaultKeyFile;
}
