using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using TaggedMirror.Contracts.Transactions;

namespace TaggedMirror.Contracts.Intake;

/// <summary>
/// The intake's wire format. A request is a Kafka message: key = the volume's name (UTF-8), value = the data (whole
/// blocks), header <see cref="IntakeHeaders.Request"/> = JSON of <see cref="IntakeRequest"/> (version, producer id,
/// request id, first block, CRC32C of the data). An outcome is JSON of <see cref="IntakeOutcome"/>, keyed by the
/// producer id. Everything a controller can check without the volume is checked in <see cref="Decode"/>; what needs
/// the volume (its size, block size) in <see cref="CheckAgainstVolume"/>. Errors are sentences for a person.
/// </summary>
public static partial class IntakeCodec
{
    /// <summary>The envelope version this code writes and reads.</summary>
    public const int Version = 1;

    /// <summary>Longest producer or request id.</summary>
    public const int MaxIdLength = 128;

    /// <summary>
    /// Producer and request ids: 1 to 128 ASCII letters, digits, <c>.</c>, <c>_</c>, <c>:</c> or <c>-</c>, starting with a
    /// letter or digit. No <c>/</c>, so <see cref="RequestKey"/> is unambiguous.
    /// </summary>
    public static bool IsValidId(string? id) => id is not null && IdPattern().IsMatch(id);

    /// <summary>
    /// The request's identity as it travels with the write to the devices (header <see cref="HeaderNames.RequestId"/>)
    /// and is recorded in their <c>TagRecorded</c>: <c>producer/request</c>.
    /// </summary>
    public static string RequestKey(string producerId, string requestId) => producerId + "/" + requestId;

    /// <summary>The envelope of a request for <paramref name="data"/>.</summary>
    public static byte[] EncodeRequest(string producerId, string requestId, long firstBlock, ReadOnlySpan<byte> data) =>
        JsonSerializer.SerializeToUtf8Bytes(new IntakeRequest(Version, producerId, requestId, firstBlock, Crc32C.Compute(data)), IntakeJson.Default.IntakeRequest);

    /// <summary>An outcome as the value of an outcomes-topic message.</summary>
    public static byte[] EncodeOutcome(IntakeOutcome outcome) => JsonSerializer.SerializeToUtf8Bytes(outcome, IntakeJson.Default.IntakeOutcome);

    /// <summary>An outcome read back; null when the value is not one (a foreign message on the topic).</summary>
    public static IntakeOutcome? DecodeOutcome(ReadOnlySpan<byte> value)
    {
        try
        {
            return JsonSerializer.Deserialize(value, IntakeJson.Default.IntakeOutcome);
        }
        catch (Exception ex) when (IsMalformed(ex))
        {
            return null;
        }
    }

    /// <summary>
    /// Reads a request: its volume (the key), envelope and data, with every check that needs no volume. On failure
    /// <see cref="IntakeDecoded.Error"/> says why, and the producer and request ids are filled in when they could be read
    /// (so the refusal can be answered).
    /// </summary>
    public static IntakeDecoded Decode(byte[]? key, byte[]? envelope, byte[]? value)
    {
        string? volume = null;
        if (key is { Length: > 0 and <= 64 })
        {
            try
            {
                volume = new UTF8Encoding(false, true).GetString(key);
            }
            catch (DecoderFallbackException)
            {
            }
        }
        if (envelope is null || envelope.Length == 0)
            return Fail(volume, null, null, $"no '{IntakeHeaders.Request}' header: not an intake request");
        if (envelope.Length > 4096)
            return Fail(volume, null, null, $"the '{IntakeHeaders.Request}' header is {envelope.Length} bytes, more than the 4096 an envelope may have");
        IntakeRequest? r;
        try
        {
            r = JsonSerializer.Deserialize(envelope, IntakeJson.Default.IntakeRequest);
        }
        catch (Exception ex) when (IsMalformed(ex))
        {
            var (p, q) = IdsOf(envelope);
            return Fail(volume, p, q, $"the '{IntakeHeaders.Request}' header is not a valid request envelope: {ex.Message}");
        }
        if (r is null) return Fail(volume, null, null, $"the '{IntakeHeaders.Request}' header is JSON null, not a request envelope");
        string? producer = IsValidId(r.ProducerId) ? r.ProducerId : null, request = IsValidId(r.RequestId) ? r.RequestId : null;
        if (producer is null)
            return Fail(volume, null, request, $"producer id '{Shown(r.ProducerId)}' is not valid: use 1 to {MaxIdLength} letters, digits, '.', '_', ':' or '-'");
        if (request is null)
            return Fail(volume, producer, null, $"request id '{Shown(r.RequestId)}' is not valid: use 1 to {MaxIdLength} letters, digits, '.', '_', ':' or '-'");
        if (r.Version != Version)
            return Fail(volume, producer, request, $"envelope version {r.Version} is not one this controller reads ({Version})");
        if (volume is null || !Names.IsValid(volume))
            return Fail(volume, producer, request, $"the message key '{Shown(volume)}' is not a volume name (1 to 48 lower-case letters, digits or dashes)");
        if (r.FirstBlock < 0)
            return Fail(volume, producer, request, $"first block {r.FirstBlock.ToString(CultureInfo.InvariantCulture)} is negative");
        if (value is null || value.Length == 0)
            return Fail(volume, producer, request, "an empty write: send one or more whole blocks");
        var crc = Crc32C.Compute(value);
        if (crc != r.DataCrc32C)
            return Fail(volume, producer, request, $"the data's CRC32C is {crc:x8}, the envelope says {r.DataCrc32C:x8}: the data was damaged or is not this request's");
        return new IntakeDecoded(volume, producer, request, r, value, null);
    }

    /// <summary>
    /// The checks that need the volume, as an HTTP write makes them: null when a write of <paramref name="bytes"/> at
    /// <paramref name="firstBlock"/> is acceptable, else why not. Overflow-free: compared as block counts.
    /// </summary>
    public static string? CheckAgainstVolume(string volume, long firstBlock, int bytes, int blockSize, long volumeBlocks, int maxWriteBytes)
    {
        if (bytes <= 0) return "an empty write: send one or more whole blocks";
        if (bytes > maxWriteBytes) return $"{bytes} bytes is more than the {maxWriteBytes} one write may carry";
        if (bytes % blockSize != 0) return $"{bytes} bytes is not a whole number of {blockSize}-byte blocks";
        long blocks = bytes / blockSize;
        if (firstBlock < 0 || firstBlock > volumeBlocks - blocks)
        {
            return $"blocks [{firstBlock.ToString(CultureInfo.InvariantCulture)}, +{blocks}) are outside volume {volume}, which has {volumeBlocks} blocks";
        }

        return null;
    }

    // Invalid UTF-8 inside a JSON string surfaces as InvalidOperationException (a DecoderFallbackException inside), not JsonException.
    private static bool IsMalformed(Exception ex) => ex is JsonException or InvalidOperationException or DecoderFallbackException;

    private static IntakeDecoded Fail(string? volume, string? producer, string? request, string error) => new(volume, producer, request, null, null, error);

    private static string Shown(string? s) => s is null ? "" : s.Length <= 64 ? s : s[..64] + "…";

    /// <summary>Producer and request ids from an envelope that did not deserialize (a wrong type elsewhere), when they are valid.</summary>
    private static (string? Producer, string? Request) IdsOf(byte[] envelope)
    {
        try
        {
            using var doc = JsonDocument.Parse(envelope);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) return (null, null);
            return (Id(doc.RootElement, "producerId"), Id(doc.RootElement, "requestId"));
        }
        catch (Exception ex) when (IsMalformed(ex))
        {
            return (null, null);
        }

        static string? Id(JsonElement root, string name) =>
            root.TryGetProperty(name, out var p) && p.ValueKind == JsonValueKind.String && p.GetString() is { } s && IsValidId(s) ? s : null;
    }

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\z", RegexOptions.CultureInvariant)]
    private static partial Regex IdPattern();
}

/// <summary>A request as <see cref="IntakeCodec.Decode"/> read it.</summary>
/// <param name="Volume">The key as text, when it is UTF-8 (not necessarily a valid name).</param>
/// <param name="ProducerId">The producer, when it could be read and is valid.</param>
/// <param name="RequestId">The request id, when it could be read and is valid.</param>
/// <param name="Request">The envelope; null on failure.</param>
/// <param name="Data">The data; null on failure.</param>
/// <param name="Error">Why it is refused; null when it is a request.</param>
public sealed record IntakeDecoded(string? Volume, string? ProducerId, string? RequestId, IntakeRequest? Request, byte[]? Data, string? Error);
