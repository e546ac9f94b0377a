using System.Buffers.Binary;
using System.Text;

namespace TaggedMirror.Integration.Tests.Harness.Otlp;

/// <summary>Protobuf wire types (the low three bits of a tag); 6 and 7 are invalid.</summary>
internal enum WireType
{
    Varint = 0,
    Fixed64 = 1,
    LengthDelimited = 2,
    StartGroup = 3,
    EndGroup = 4,
    Fixed32 = 5,
}

/// <summary>
/// Reads the protobuf wire format from a span. Every malformed or truncated input ends in
/// <see cref="InvalidDataException"/>, never an index error, so a receiver can tell "bad payload" from "bug".
/// </summary>
internal ref struct ProtoReader
{
    // Deeper nesting than this is garbage, not OTLP; stop before it overflows the stack.
    public const int MaxDepth = 64;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly ReadOnlySpan<byte> _data;
    private int _position;

    public ProtoReader(ReadOnlySpan<byte> data)
    {
        _data = data;
    }

    public readonly bool End => _position >= _data.Length;

    /// <summary>Reads the next tag; false at the end of the data.</summary>
    public bool TryReadTag(out int field, out WireType wireType)
    {
        if (End)
        {
            field = 0;
            wireType = default;
            return false;
        }
        var start = _position;
        var tag = ReadVarint();
        var number = tag >> 3;
        var wire = (int)(tag & 7);
        if (number is 0 or > 0x1FFF_FFFF)
            throw new InvalidDataException($"invalid field number {number} at byte {start}");
        if (wire > (int)WireType.Fixed32)
            throw new InvalidDataException($"invalid wire type {wire} for field {number} at byte {start}");
        field = (int)number;
        wireType = (WireType)wire;
        return true;
    }

    public ulong ReadVarint()
    {
        var start = _position;
        ulong value = 0;
        // Ten bytes hold 64 bits; the exporter pads lengths to four bytes, which is still a valid varint.
        for (var shift = 0; shift < 70; shift += 7)
        {
            if (_position >= _data.Length)
                throw new InvalidDataException($"truncated varint at byte {start} of {_data.Length}");
            var b = _data[_position++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
        throw new InvalidDataException($"varint longer than 10 bytes at byte {start}");
    }

    public ulong ReadFixed64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, "fixed64"));

    public uint ReadFixed32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, "fixed32"));

    public double ReadDouble() => BitConverter.UInt64BitsToDouble(ReadFixed64());

    /// <summary>Reads a length-delimited field: bytes, a string, an embedded message or a packed array.</summary>
    public ReadOnlySpan<byte> ReadLengthDelimited()
    {
        var start = _position;
        var length = ReadVarint();
        if (length > (ulong)(_data.Length - _position))
            throw new InvalidDataException($"length {length} at byte {start} runs past the end ({_data.Length - _position} bytes left)");
        return Take((int)length, "length-delimited field");
    }

    public string ReadString()
    {
        var start = _position;
        var bytes = ReadLengthDelimited();
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw new InvalidDataException($"string at byte {start} is not valid UTF-8", ex);
        }
    }

    /// <summary>Skips the value of a field whose tag was just read, whatever its wire type (groups included).</summary>
    public void Skip(int field, WireType wireType) => Skip(field, wireType, 0);

    private void Skip(int field, WireType wireType, int depth)
    {
        switch (wireType)
        {
            case WireType.Varint: ReadVarint(); break;
            case WireType.Fixed64: Take(8, "fixed64"); break;
            case WireType.Fixed32: Take(4, "fixed32"); break;
            case WireType.LengthDelimited: ReadLengthDelimited(); break;
            case WireType.StartGroup:
                if (depth >= MaxDepth) throw new InvalidDataException($"groups nested deeper than {MaxDepth}");
                // A group has no length: skip fields until the end-group tag of the same field number.
                while (true)
                {
                    if (!TryReadTag(out var inner, out var innerType))
                        throw new InvalidDataException($"group {field} has no end-group tag");
                    if (innerType == WireType.EndGroup)
                    {
                        if (inner != field)
                            throw new InvalidDataException($"end-group {inner} closes group {field}");
                        return;
                    }
                    Skip(inner, innerType, depth + 1);
                }
            default:
                throw new InvalidDataException($"unexpected end-group tag at byte {_position}");
        }
    }

    private ReadOnlySpan<byte> Take(int count, string what)
    {
        if (count > _data.Length - _position)
            throw new InvalidDataException($"truncated {what} at byte {_position}: needs {count} bytes, {_data.Length - _position} left");
        var slice = _data.Slice(_position, count);
        _position += count;
        return slice;
    }
}
