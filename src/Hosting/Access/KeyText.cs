using System.Security.Cryptography;
using System.Text;

namespace TaggedMirror.Hosting.Access;

/// <summary>
/// An API key's text: <c>tm_&lt;id&gt;_&lt;secret&gt;</c>, the id 12 lower-case hex digits (what lists, logs and
/// provenance show), the secret 32 random bytes in base64url (43 characters). Only a salted SHA-256 of the secret is
/// stored: a secret of 256 random bits cannot be guessed, so a slow hash would add nothing but cost on every request.
/// </summary>
public static class KeyText
{
    /// <summary>What every key starts with.</summary>
    public const string Prefix = "tm_";
    private const int IdChars = 12;
    private const int SecretBytes = 32;
    private const int SecretChars = 43;
    /// <summary>Bytes of salt stored with each hash.</summary>
    public const int SaltBytes = 16;

    /// <summary>Characters in a key's text.</summary>
    public static int Length => Prefix.Length + IdChars + 1 + SecretChars;

    /// <summary>A new key: its id, its whole text (shown once) and what is stored of it.</summary>
    public static (string Id, string Text, byte[] Salt, byte[] Hash) New()
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(IdChars / 2));
        var secret = Base64Url(RandomNumberGenerator.GetBytes(SecretBytes));
        var salt = RandomNumberGenerator.GetBytes(SaltBytes);
        return (id, $"{Prefix}{id}_{secret}", salt, Hash(salt, secret));
    }

    /// <summary>Splits a presented key into id and secret; false (and nothing looked up) when it is not shaped like one.</summary>
    public static bool TryParse(string? text, out string id, out string secret)
    {
        id = secret = "";
        if (text is null || text.Length != Length || !text.StartsWith(Prefix, StringComparison.Ordinal) || text[Prefix.Length + IdChars] != '_')
            return false;
        var idPart = text.AsSpan(Prefix.Length, IdChars);
        var secretPart = text.AsSpan(Prefix.Length + IdChars + 1);
        foreach (var c in idPart)
        {
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f'))) return false;
        }
        foreach (var c in secretPart)
        {
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or '-' or '_')) return false;
        }
        id = idPart.ToString();
        secret = secretPart.ToString();
        return true;
    }

    /// <summary>Whether <paramref name="text"/> is shaped like a key's id (lowercase hex of the id's length).</summary>
    public static bool IsId(string? text) =>
        text is { Length: IdChars } && text.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'f'));

    /// <summary>SHA-256 of the salt followed by the secret's characters.</summary>
    public static byte[] Hash(byte[] salt, string secret)
    {
        var input = new byte[salt.Length + Encoding.ASCII.GetByteCount(secret)];
        salt.CopyTo(input, 0);
        Encoding.ASCII.GetBytes(secret, input.AsSpan(salt.Length));
        return SHA256.HashData(input);
    }

    /// <summary>Whether <paramref name="secret"/> is the one stored as (<paramref name="salt"/>, <paramref name="hash"/>), in constant time.</summary>
    public static bool Matches(string secret, byte[] salt, byte[] hash) =>
        CryptographicOperations.FixedTimeEquals(Hash(salt, secret), hash);

    private static string Base64Url(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
