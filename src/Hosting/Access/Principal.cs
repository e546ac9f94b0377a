using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Controller.Access;

/// <summary>Who a request is: the key it presented (by id, never the secret) and what that key may do.</summary>
internal sealed record Principal(string KeyId, string Role, string[] Volumes, bool ReadOnly)
{
    public bool IsOperator => Role == AccessRoles.Operator;

    /// <summary>May see and read <paramref name="volume"/>: an operator any, a producer those its key names.</summary>
    public bool MayRead(string volume) => IsOperator || Array.IndexOf(Volumes, volume) >= 0;

    /// <summary>May write <paramref name="volume"/>: as <see cref="MayRead"/>, and the key is not read-only.</summary>
    public bool MayWrite(string volume) => MayRead(volume) && !ReadOnly;
}
