namespace TaggedMirror.Nbd.Protocol;

/// <summary>The protocol's magic numbers (spec "Values"), all sent big-endian.</summary>
public static class NbdMagic
{
    /// <summary>"NBDMAGIC": the first eight bytes of the greeting.</summary>
    public const ulong Init = 0x4e42444d41474943;

    /// <summary>"IHAVEOPT": the rest of the newstyle greeting, and the start of every option request.</summary>
    public const ulong Option = 0x49484156454F5054;

    /// <summary>The start of every option reply.</summary>
    public const ulong OptionReply = 0x0003e889045565a9;

    /// <summary>The start of every request in transmission.</summary>
    public const uint Request = 0x25609513;

    /// <summary>The start of a simple reply.</summary>
    public const uint SimpleReply = 0x67446698;

    /// <summary>The start of a structured reply chunk.</summary>
    public const uint StructuredReply = 0x668e33ef;

    /// <summary>Handshake flags the server sends: fixed newstyle, and no 124 zero bytes after an export name if the client agrees.</summary>
    public const ushort HandshakeFlags = 0x0003;

    /// <summary>Client flag: the client speaks fixed newstyle.</summary>
    public const uint ClientFixedNewstyle = 0x1;

    /// <summary>Client flag: the client does not want the 124 zero bytes after <see cref="NbdOption.ExportName"/>.</summary>
    public const uint ClientNoZeroes = 0x2;
}
