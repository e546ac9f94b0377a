using System.Text.RegularExpressions;

namespace TaggedMirror.Contracts;

/// <summary>Rules for the names of devices, volumes and storage objects, and the names derived from them.</summary>
public static partial class Names
{
    /// <summary>Lower-case letters, digits and dashes, 1 to 48 characters, starting with a letter or digit.</summary>
    public static bool IsValid(string? name) => name is not null && NamePattern().IsMatch(name);

    /// <summary>The storage object holding <paramref name="volume"/>'s mirror on <paramref name="deviceId"/> (M6).</summary>
    public static string ObjectId(string volume, string deviceId) => volume + "." + deviceId;

    /// <summary>A device's object ids are <c>volume.device</c>; this returns the volume part.</summary>
    public static string VolumeOfObject(string objectId)
    {
        var dot = objectId.LastIndexOf('.');
        return dot < 0 ? objectId : objectId[..dot];
    }

    /// <summary>What <see cref="IsValidSchema"/> accepts, for messages.</summary>
    public const string SchemaRule =
        "a plain PostgreSQL schema name: a lower-case letter or underscore, then lower-case letters, digits or underscores, at most 63, not starting with pg_";

    /// <summary>
    /// A PostgreSQL schema name the cluster's tables can live in, written into SQL as it is (no quoting needed):
    /// see <see cref="SchemaRule"/>.
    /// </summary>
    public static bool IsValidSchema(string? schema) =>
        schema is { Length: > 0 and <= 63 } && (char.IsAsciiLetterLower(schema[0]) || schema[0] == '_')
        && schema.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_') && !schema.StartsWith("pg_", StringComparison.Ordinal);

    [GeneratedRegex(@"^[a-z0-9][a-z0-9-]{0,47}\z", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();
}
