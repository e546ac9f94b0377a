using FsCheck;
using FsCheck.Xunit;
using Microsoft.AspNetCore.Http;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Controller.Access;
using TaggedMirror.Hosting.Access;

namespace TaggedMirror.Controller.Tests.Access;

/// <summary>An API key's text, its stored hash, and what a principal may do with which endpoint.</summary>
public sealed class KeyTextTests
{
    [Fact]
    public void a_new_key_parses_back_to_its_id_and_matches_only_its_own_secret()
    {
        var (id, text, salt, hash) = KeyText.New();
        Assert.Equal(KeyText.Length, text.Length);
        Assert.True(KeyText.TryParse(text, out var parsedId, out var secret));
        Assert.Equal(id, parsedId);
        Assert.True(KeyText.Matches(secret, salt, hash));
        var wrong = secret[..^1] + (secret[^1] == 'A' ? 'B' : 'A');
        Assert.False(KeyText.Matches(wrong, salt, hash));
        Assert.DoesNotContain(secret, Convert.ToBase64String(hash), StringComparison.Ordinal);
    }

    [Fact]
    public void the_same_secret_under_two_salts_hashes_differently()
    {
        var (_, text, salt1, hash1) = KeyText.New();
        KeyText.TryParse(text, out _, out var secret);
        var salt2 = (byte[])salt1.Clone();
        salt2[0] ^= 1;
        Assert.NotEqual(hash1, KeyText.Hash(salt2, secret));
        Assert.False(KeyText.Matches(secret, salt2, hash1));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("tm_")]
    [InlineData("tm_0123456789ab_")]
    [InlineData("xx_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]      // prefix
    [InlineData("tm_0123456789AB_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]      // upper-case id
    [InlineData("tm_0123456789ag_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]      // not hex
    [InlineData("tm_0123456789ab-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]      // separator
    [InlineData("tm_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]       // one short
    [InlineData("tm_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]     // one long
    [InlineData("tm_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]      // padding
    [InlineData("tm_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+")]      // base64, not base64url
    [InlineData("tm_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAé")]
    public void text_not_shaped_like_a_key_is_refused_before_any_lookup(string? text)
    {
        Assert.False(KeyText.TryParse(text, out var id, out var secret));
        Assert.Equal("", id);
        Assert.Equal("", secret);
    }

    [Property(MaxTest = 300)]
    public void any_text_either_is_refused_or_splits_into_a_hex_id_and_a_base64url_secret(NonNull<string> text)
    {
        if (!KeyText.TryParse(text.Get, out var id, out var secret)) return;
        Assert.Equal(text.Get, $"tm_{id}_{secret}");
        Assert.Matches("^[0-9a-f]{12}$", id);
        Assert.Matches("^[A-Za-z0-9_-]{43}$", secret);
    }

    [Fact]
    public void an_operator_may_do_everything_and_a_producer_only_its_volumes()
    {
        var op = new Principal("a", AccessRoles.Operator, [], false);
        var writer = new Principal("b", AccessRoles.Producer, ["mine"], false);
        var reader = new Principal("c", AccessRoles.Producer, ["mine"], true);
        foreach (var need in Enum.GetValues<AccessNeed>())
            Assert.Null(AccessControl.Forbidden(op, need, Request("theirs")));

        Assert.Null(AccessControl.Forbidden(writer, AccessNeed.AnyKey, Request(null)));
        Assert.Null(AccessControl.Forbidden(writer, AccessNeed.ReadVolume, Request("mine")));
        Assert.Null(AccessControl.Forbidden(writer, AccessNeed.WriteVolume, Request("mine")));
        Assert.NotNull(AccessControl.Forbidden(writer, AccessNeed.ReadVolume, Request("theirs")));
        Assert.NotNull(AccessControl.Forbidden(writer, AccessNeed.WriteVolume, Request("theirs")));
        Assert.NotNull(AccessControl.Forbidden(writer, AccessNeed.ReadVolume, Request(null)));
        Assert.NotNull(AccessControl.Forbidden(writer, AccessNeed.Operator, Request("mine")));

        Assert.Null(AccessControl.Forbidden(reader, AccessNeed.ReadVolume, Request("mine")));
        Assert.Contains("read-only", AccessControl.Forbidden(reader, AccessNeed.WriteVolume, Request("mine")), StringComparison.Ordinal);
        Assert.NotNull(AccessControl.Forbidden(reader, AccessNeed.WriteVolume, Request("theirs")));
        // Volume names compare exactly.
        Assert.NotNull(AccessControl.Forbidden(writer, AccessNeed.ReadVolume, Request("Mine")));
        Assert.NotNull(AccessControl.Forbidden(writer, AccessNeed.ReadVolume, Request("mine2")));
    }

    private static DefaultHttpContext Request(string? volume)
    {
        var context = new DefaultHttpContext();
        if (volume is not null) context.Request.RouteValues["name"] = volume;
        return context;
    }
}
