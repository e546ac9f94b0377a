using System.Collections.Concurrent;
using System.Text;
using Confluent.Kafka;
using TaggedMirror.Contracts.Intake;
using TaggedMirror.Hosting.Access;

namespace TaggedMirror.Controller.Intake;

/// <summary>
/// Who sent an intake request (docs/design.md, "Who may publish a write"): the API key in its
/// <see cref="IntakeHeaders.Key"/> header, which must be live and hold the producer id the request names. A producer
/// id is held by the first key whose request named it, until that key is revoked (then by the next live key to name
/// it), so no other key can answer, spoil or replay that producer's request ids. A request from no one (no key, a
/// wrong or revoked one, another key's producer id) is quarantined, and nothing is published or recorded for it.
/// </summary>
internal sealed class IntakeAccess(ApiKeyLookup keys, IntakeStore store)
{
    private const int MaxKeyHeaderBytes = 256;

    // Producer id → the key last seen holding it. Only a match is trusted; anything else is asked of PostgreSQL.
    private readonly ConcurrentDictionary<string, string> _holders = new(StringComparer.Ordinal);

    /// <summary>
    /// The principal of the key that sent a request naming <paramref name="producerId"/>, or why the request is no
    /// one's (principal null). Throws <see cref="KeyLookupUnavailableException"/> when a key never seen before cannot
    /// be checked (PostgreSQL away): the caller waits and asks again.
    /// </summary>
    public async ValueTask<(Principal? Principal, string? Refusal)> IdentifyAsync(Headers? headers, string producerId, CancellationToken ct)
    {
        if (headers is null || !headers.TryGetLastBytes(IntakeHeaders.Key, out var raw) || raw is not { Length: > 0 })
            return (null, $"the request carries no API key (Kafka header {IntakeHeaders.Key}): the intake takes requests from keys only");
        if (raw.Length > MaxKeyHeaderBytes)
            return (null, $"the request's {IntakeHeaders.Key} header is {raw.Length} bytes: not an API key");
        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(raw);
        }
        catch (DecoderFallbackException)
        {
            return (null, $"the request's {IntakeHeaders.Key} header is not UTF-8: not an API key");
        }
        if (await keys.AuthenticateAsync(text, ct) is not { } principal)
            return (null, "the request's API key is unknown, wrong or revoked");
        var holder = await HolderAsync(producerId, principal.KeyId, ct);
        return holder == principal.KeyId
            ? (principal, null)
            : (null, $"producer id {producerId} is held by another key: a producer id belongs to the first key that used it, until that key is revoked");
    }

    private async ValueTask<string> HolderAsync(string producerId, string keyId, CancellationToken ct)
    {
        if (_holders.TryGetValue(producerId, out var cached) && cached == keyId) return keyId;
        var holder = await store.ClaimProducerAsync(producerId, keyId, replacing: null, ct);
        if (holder != keyId && await keys.FindLiveAsync(holder, ct) is null)
            holder = await store.ClaimProducerAsync(producerId, keyId, replacing: holder, ct);
        if (_holders.Count > 100_000) _holders.Clear();
        _holders[producerId] = holder;
        return holder;
    }
}
