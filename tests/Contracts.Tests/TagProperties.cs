using FsCheck;
using FsCheck.Xunit;

namespace TaggedMirror.Contracts.Tests;

/// <summary>
/// Properties of <see cref="Tag"/> over generated tags (FsCheck shrinks a failure to its smallest fields). Plain
/// ints come from a range that grows with the test size, so equal and neighbouring fields are common;
/// <see cref="DoNotSize{T}"/> fields span the whole range, extremes included.
/// </summary>
public sealed class TagProperties
{
    [Property(MaxTest = 1000)]
    public bool compare_to_is_antisymmetric_and_zero_exactly_for_equal_tags(int c1, int e1, long s1, int c2, int e2, long s2)
    {
        Tag a = new(c1, e1, s1), b = new(c2, e2, s2);
        return Math.Sign(a.CompareTo(b)) == -Math.Sign(b.CompareTo(a))
            && (a.CompareTo(b) == 0) == a.Equals(b)
            && (a.CompareTo(b) == 0) == (a.GetHashCode() == b.GetHashCode() && a == b)
            && a.CompareTo(a) == 0;
    }

    [Property(MaxTest = 1000)]
    public bool compare_to_is_transitive(int c1, int e1, long s1, int c2, int e2, long s2, int c3, int e3, long s3)
    {
        Tag[] sorted = [new(c1, e1, s1), new(c2, e2, s2), new(c3, e3, s3)];
        Array.Sort(sorted);
        // Sorted by CompareTo, so a ≤ b ≤ c; transitivity says a ≤ c, and strictly when either step is strict.
        var (ab, bc, ac) = (sorted[0].CompareTo(sorted[1]), sorted[1].CompareTo(sorted[2]), sorted[0].CompareTo(sorted[2]));
        return ab <= 0 && bc <= 0 && ac <= 0 && (ac < 0) == (ab < 0 || bc < 0);
    }

    [Property(MaxTest = 1000)]
    public bool compare_to_orders_by_controller_then_epoch_then_seq(int c1, int e1, long s1, int c2, int e2, long s2)
    {
        var expected = c1 != c2 ? c1.CompareTo(c2) : e1 != e2 ? e1.CompareTo(e2) : s1.CompareTo(s2);
        return Math.Sign(new Tag(c1, e1, s1).CompareTo(new Tag(c2, e2, s2))) == Math.Sign(expected);
    }

    [Property(MaxTest = 1000)]
    public bool encoded_tags_of_non_negative_fields_sort_like_tags(
        NonNegativeInt c1, NonNegativeInt e1, DoNotSize<long> s1, NonNegativeInt c2, NonNegativeInt e2, DoNotSize<long> s2)
    {
        Tag a = new(c1.Get, e1.Get, s1.Item & long.MaxValue), b = new(c2.Get, e2.Get, s2.Item & long.MaxValue);
        return Math.Sign(Encode(a).AsSpan().SequenceCompareTo(Encode(b))) == Math.Sign(a.CompareTo(b));
    }

    [Property(MaxTest = 1000)]
    public bool write_to_then_read_from_round_trips_any_tag(DoNotSize<int> c, DoNotSize<int> e, DoNotSize<long> s)
    {
        var tag = new Tag(c.Item, e.Item, s.Item);
        return Tag.ReadFrom(Encode(tag)) == tag;
    }

    [Property(MaxTest = 1000)]
    public bool the_text_form_parses_back_exactly_when_every_field_is_non_negative(DoNotSize<int> c, DoNotSize<int> e, DoNotSize<long> s)
    {
        var tag = new Tag(c.Item, e.Item, s.Item);
        var parsed = Tag.TryParse(tag.ToString(), out var back);
        // Negative fields print with a '-', which the text form does not take.
        return parsed == (tag.ControllerId >= 0 && tag.Epoch >= 0 && tag.Seq >= 0) && (parsed ? back == tag : back == default);
    }

    [Property(MaxTest = 2000)]
    public bool try_parse_of_any_string_never_throws_and_what_it_accepts_prints_and_parses_back(string? text) => ParsesConsistently(text);

    /// <summary>Strings from the characters the text form uses (and a few it must refuse), so near misses are common.</summary>
    [Property(MaxTest = 2000)]
    public bool try_parse_of_near_miss_strings_never_throws_and_what_it_accepts_prints_and_parses_back(byte[] picks)
    {
        const string alphabet = "0123456789::::-+ .e\u0661x";
        return ParsesConsistently(new string([.. picks.Select(p => alphabet[p % alphabet.Length])]));
    }

    private static bool ParsesConsistently(string? text)
    {
        if (!Tag.TryParse(text, out var tag)) return tag == default;
        // Accepted text is three ':'-separated runs of ASCII digits (leading zeros allowed), each within its type.
        var parts = text!.Split(':');
        return parts.Length == 3
            && parts.All(p => p.Length > 0 && p.All(char.IsAsciiDigit))
            && tag.ControllerId >= 0 && tag.Epoch >= 0 && tag.Seq >= 0
            && Tag.TryParse(tag.ToString(), out var again) && again == tag
            && tag.ToString() == string.Join(':', parts.Select(p => p.TrimStart('0') is { Length: > 0 } digits ? digits : "0"));
    }

    private static byte[] Encode(Tag tag)
    {
        var bytes = new byte[Tag.Size];
        tag.WriteTo(bytes);
        return bytes;
    }
}
