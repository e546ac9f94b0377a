using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Hosting.Access;

/// <summary>Who a request is: the key it presented (by id, never the secret) and what that key may do.</summary>
/// <param name="KeyId">The key's id (its text's public part).</param>
/// <param name="Role">The key's role (<see cref="AccessRoles"/>).</param>
/// <param name="Volumes">The volumes a producer key names.</param>
/// <param name="ReadOnly">Whether a producer key may only read.</param>
public sealed record Principal(string KeyId, string Role, string[] Volumes, bool ReadOnly)
{
    /// <summary>Whether the key is an operator's.</summary>
    public bool IsOperator => Role == AccessRoles.Operator;

    /// <summary>May see and read <paramref name="volume"/>: an operator any, a producer those its key names.</summary>
    public bool MayRead(string volume) => IsOperator || Array.IndexOf(Volumes, volume) >= 0;

    /// <summary>May write <paramref name="volume"/>: as <see cref="MayRead"/>, and the key is not read-only.</summary>
    public bool MayWrite(string volume) => MayRead(volume) && !ReadOnly;
}
