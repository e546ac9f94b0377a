using System.Text;
using TaggedMirror.Contracts.Transactions;

namespace TaggedMirror.Controller.Fanout;

/// <summary>
/// Where a write came from, as it travels with every copy: who asked for it (header <c>tm-who</c>, recorded by each
/// device in its block-writer table, docs/design.md "Who wrote a block") and, for an intake request, the request
/// (<c>tm-req</c>). Both UTF-8, encoded once per write.
/// </summary>
/// <param name="Principal">Printable ASCII, at most <see cref="HeaderNames.MaxPrincipalBytes"/>; null when unknown.</param>
/// <param name="RequestId">An intake request's <c>producer/request</c>; null otherwise.</param>
internal readonly record struct WriteOrigin(byte[]? Principal, byte[]? RequestId)
{
    /// <summary>A write asked for with API key <paramref name="keyId"/>.</summary>
    public static WriteOrigin Key(string keyId) => new(Encode("key:" + keyId), null);

    /// <summary>A write from an NBD client at <paramref name="client"/> (its address: NBD carries no identity of its own).</summary>
    public static WriteOrigin Nbd(string client) => new(Encode("nbd:" + client), null);

    /// <summary>A write published to the intake with API key <paramref name="keyId"/> as request <paramref name="requestId"/> (<c>producer/request</c>).</summary>
    public static WriteOrigin Intake(string keyId, string requestId) => new(Encode("key:" + keyId), Encoding.ASCII.GetBytes(requestId));

    /// <summary>
    /// The text as a header value: control and non-ASCII characters become '?', cut to
    /// <see cref="HeaderNames.MaxPrincipalBytes"/>, so a device always records it.
    /// </summary>
    internal static byte[] Encode(string principal)
    {
        var bytes = new byte[Math.Min(principal.Length, HeaderNames.MaxPrincipalBytes)];
        for (var i = 0; i < bytes.Length; i++)
        {
            var c = principal[i];
            bytes[i] = c is >= ' ' and < (char)127 ? (byte)c : (byte)'?';
        }
        return bytes;
    }
}
