using System.Buffers.Binary;
using System.Globalization;

namespace TaggedMirror.Contracts;

/// <summary>
/// The tag a controller gives one application write (M1, M2). Unique across hosts because each
/// controller has its own id, every start or takeover is a new <see cref="Epoch"/>, and
/// <see cref="Seq"/> counts writes within an epoch from 1.
/// </summary>
public readonly record struct Tag(int ControllerId, int Epoch, long Seq) : IComparable<Tag>
{
    /// <summary>Encoded size in bytes.</summary>
    public const int Size = 16;

    /// <summary>Writes the tag as big-endian (controller, epoch, seq), so encoded tags sort like tags (all fields are non-negative).</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteInt32BigEndian(destination, ControllerId);
        BinaryPrimitives.WriteInt32BigEndian(destination[4..], Epoch);
        BinaryPrimitives.WriteInt64BigEndian(destination[8..], Seq);
    }

    /// <summary>Reads a tag written by <see cref="WriteTo"/>.</summary>
    public static Tag ReadFrom(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadInt32BigEndian(source),
        BinaryPrimitives.ReadInt32BigEndian(source[4..]),
        BinaryPrimitives.ReadInt64BigEndian(source[8..]));

    /// <inheritdoc />
    public int CompareTo(Tag other)
    {
        var c = ControllerId.CompareTo(other.ControllerId);
        if (c != 0) return c;
        c = Epoch.CompareTo(other.Epoch);
        return c != 0 ? c : Seq.CompareTo(other.Seq);
    }

    /// <summary>Text form <c>controller:epoch:seq</c>, as shown in traces and status.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{ControllerId}:{Epoch}:{Seq}");

    /// <summary>Parses the text form <c>controller:epoch:seq</c>.</summary>
    public static bool TryParse(string? text, out Tag tag)
    {
        tag = default;
        if (text is null) return false;
        var parts = text.Split(':');
        if (parts.Length != 3
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var c)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var e)
            || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var s))
        {
            return false;
        }
        tag = new Tag(c, e, s);
        return true;
    }
}
