using System.Buffers.Binary;
using System.Text;

namespace TaggedMirror.Nbd.Protocol;

/// <summary>
/// The data of <see cref="NbdOption.ListMetaContext"/> and <see cref="NbdOption.SetMetaContext"/>: u32 name length,
/// the export name, u32 count of queries, then each query as u32 length and text; the lengths must add up to the
/// option's length exactly (spec "Metadata querying").
/// </summary>
/// <param name="Export">The export the contexts are for.</param>
/// <param name="Queries">The contexts asked for (<c>base:allocation</c>, or a namespace such as <c>base:</c>).</param>
public sealed record NbdMetaContextQuery(string Export, IReadOnlyList<string> Queries)
{
    /// <summary>The one context the server offers: which ranges are allocated (spec "The <c>base:</c> namespace").</summary>
    public const string BaseAllocation = "base:allocation";

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Parses the option's data; on failure returns false with the reason for an <see cref="NbdReplyType.ErrInvalid"/>.</summary>
    public static bool TryParse(ReadOnlySpan<byte> data, out NbdMetaContextQuery query, out string error)
    {
        query = new NbdMetaContextQuery("", []);
        if (!TryReadString(ref data, "export name", out var export, out error)) return false;
        if (data.Length < 4)
        {
            error = "the option ends before its count of queries";
            return false;
        }
        var count = BinaryPrimitives.ReadUInt32BigEndian(data);
        data = data[4..];
        // Each query takes at least its 4-byte length: a count the data cannot hold is refused before any allocation.
        if (count > (uint)data.Length / 4)
        {
            error = $"{count} queries do not fit the {data.Length} bytes left in the option";
            return false;
        }
        var queries = new string[count];
        for (var i = 0; i < queries.Length; i++)
        {
            if (!TryReadString(ref data, $"query {i + 1}", out queries[i], out error)) return false;
        }
        if (data.Length != 0)
        {
            error = $"{data.Length} bytes follow the last query";
            return false;
        }
        query = new NbdMetaContextQuery(export, queries);
        return true;
    }

    private static bool TryReadString(ref ReadOnlySpan<byte> data, string what, out string text, out string error)
    {
        text = "";
        error = "";
        if (data.Length < 4)
        {
            error = $"the option ends before the length of its {what}";
            return false;
        }
        var length = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (length > (uint)(data.Length - 4) || length > NbdWire.MaxString)
        {
            error = $"the {what}'s length {length} does not fit the {data.Length - 4} bytes left (or exceeds {NbdWire.MaxString})";
            return false;
        }
        try
        {
            text = StrictUtf8.GetString(data.Slice(4, (int)length));
        }
        catch (DecoderFallbackException)
        {
            error = $"the {what} is not UTF-8";
            return false;
        }
        data = data[(4 + (int)length)..];
        return true;
    }
}
