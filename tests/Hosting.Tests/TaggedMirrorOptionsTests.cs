namespace TaggedMirror.Hosting.Tests;

/// <summary>Shared settings a controller or agent must refuse at start rather than run with.</summary>
public sealed class TaggedMirrorOptionsTests
{
    [Theory]
    [InlineData("")]
    [InlineData("Tm")]
    [InlineData("tm-local")]
    [InlineData("1tm")]
    [InlineData("tm; DROP TABLE x")]
    [InlineData("tm.events")]
    [InlineData("\"tm\"")]
    [InlineData("pg_catalog")]
    [InlineData("täglich")]
    [InlineData("t234567890123456789012345678901234567890123456789012345678901234")] // 64
    public void a_schema_that_is_not_a_plain_postgresql_name_is_refused(string schema)
    {
        var ex = Assert.Throws<ArgumentException>(new TaggedMirrorOptions { Schema = schema }.Validate);
        Assert.Contains("TaggedMirror:Schema", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("tm")]
    [InlineData("tm_local")]
    [InlineData("_x")]
    [InlineData("t0123456789ab")]
    [InlineData("t23456789012345678901234567890123456789012345678901234567890123")] // 63
    public void a_plain_schema_name_is_taken(string schema)
    {
        new TaggedMirrorOptions { Schema = schema }.Validate();
    }

    [Theory]
    [InlineData("")]
    [InlineData("a b")]
    [InlineData("a/b")]
    [InlineData("a\nb")]
    [InlineData("c1234567890123456789012345678901234567890123456789012345678901234")] // 65
    public void a_cluster_name_the_bus_cannot_carry_is_refused(string cluster)
    {
        var ex = Assert.Throws<ArgumentException>(new TaggedMirrorOptions { Cluster = cluster }.Validate);
        Assert.Contains("TaggedMirror:Cluster", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("dev")]
    [InlineData("local")]
    [InlineData("prod-eu.1_a")]
    public void a_plain_cluster_name_is_taken(string cluster)
    {
        new TaggedMirrorOptions { Cluster = cluster }.Validate();
    }
}
