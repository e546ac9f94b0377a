namespace TaggedMirror.Contracts.Api;

/// <summary>What an API key may do: <see cref="Operator"/> manages volumes, mirrors and keys and reads and writes
/// every volume; <see cref="Producer"/> reads (and, unless read-only, writes) the volumes its key names.</summary>
public static class AccessRoles
{
    /// <summary>Manages volumes, mirrors and keys; reads and writes every volume.</summary>
    public const string Operator = "operator";

    /// <summary>Reads, and unless read-only writes, the volumes its key names.</summary>
    public const string Producer = "producer";

    /// <summary>Whether <paramref name="role"/> is one of the two.</summary>
    public static bool IsValid(string? role) => role is Operator or Producer;
}

/// <summary>
/// Where a caller puts its key: <c>Authorization: Bearer &lt;key&gt;</c>, or this header. The CLI takes the key from
/// <see cref="KeyEnvironment"/>, else the file <see cref="KeyFileEnvironment"/> names, else <see cref="DefaultKeyFile"/>.
/// </summary>
public static class AccessHeaders
{
    /// <summary>The header a key may come in instead of <c>Authorization: Bearer</c>.</summary>
    public const string ApiKey = "X-TM-Key";

    /// <summary>The environment variable the CLI takes a key from first.</summary>
    public const string KeyEnvironment = "TM_API_KEY";

    /// <summary>The environment variable naming the file the CLI reads a key from next.</summary>
    public const string KeyFileEnvironment = "TM_KEY_FILE";

    /// <summary>
    /// The CLI's environment variable naming a PEM file of the certificates (a CA's, or a self-signed server's) it
    /// trusts for <c>https://</c> URLs instead of the system's; the local stack's is <c>.run/tls/ca.pem</c>.
    /// </summary>
    public const string CaFileEnvironment = "TM_CA_FILE";

    /// <summary>Where the controller writes the operator key it creates at its first start, and where the CLI looks for one.</summary>
    public static string DefaultKeyFile =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config", "taggedmirror", "operator.key");
}

/// <summary>Body of <c>POST /keys</c>.</summary>
public sealed record CreateKeyRequest(string? Role, string[]? Volumes, bool ReadOnly = false, string? Description = null);

/// <summary>An API key as listed: never its secret.</summary>
public sealed record ApiKeyInfo(
    string Id, string Role, string[] Volumes, bool ReadOnly, string? Description, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt);

/// <summary>What <c>POST /keys</c> answers: the key (its whole text, shown this once) and what it may do.</summary>
public sealed record CreatedKey(string Key, ApiKeyInfo Info);
