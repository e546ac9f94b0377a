using System.Buffers.Binary;
using System.Text;

namespace TaggedMirror.Nbd.Protocol;

/// <summary>
/// The data of <see cref="NbdOption.Info"/> and <see cref="NbdOption.Go"/>: u32 name length, the export name, u16 count,
/// then that many u16 information types; the lengths must add up to the option's length exactly.
/// </summary>
/// <param name="Name">The export asked for (empty: the default export).</param>
/// <param name="Requested">Information types the client asked for.</param>
public sealed record NbdExportQuery(string Name, IReadOnlyList<NbdInfoType> Requested)
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Parses the option's data; on failure returns false with the reason for an <see cref="NbdReplyType.ErrInvalid"/>.</summary>
    public static bool TryParse(ReadOnlySpan<byte> data, out NbdExportQuery query, out string error)
    {
        query = new NbdExportQuery("", []);
        error = "";
        if (data.Length < 6)
        {
            error = $"{data.Length} bytes is too short for an export query (name length, name, count of information requests)";
            return false;
        }
        var nameLength = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLength > (uint)(data.Length - 6) || nameLength > NbdWire.MaxString)
        {
            error = $"the export name's length {nameLength} does not fit the option's {data.Length} bytes (or exceeds {NbdWire.MaxString})";
            return false;
        }
        string name;
        try
        {
            name = StrictUtf8.GetString(data.Slice(4, (int)nameLength));
        }
        catch (DecoderFallbackException)
        {
            error = "the export name is not UTF-8";
            return false;
        }
        var rest = data[(4 + (int)nameLength)..];
        var count = BinaryPrimitives.ReadUInt16BigEndian(rest);
        if (rest.Length != 2 + 2 * count)
        {
            error = $"{count} information requests need {2 * count} bytes, the option has {rest.Length - 2} left";
            return false;
        }
        var requested = new NbdInfoType[count];
        for (var i = 0; i < count; i++) requested[i] = (NbdInfoType)BinaryPrimitives.ReadUInt16BigEndian(rest[(2 + 2 * i)..]);
        query = new NbdExportQuery(name, requested);
        return true;
    }
}
