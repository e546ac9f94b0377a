namespace TaggedMirror.Deployment.Tests;

public sealed class YamlTests
{
    [Fact]
    public void Reads_mappings_sequences_scalars_flow_lists_anchors_and_block_scalars()
    {
        var root = Assert.IsType<YamlMapping>(Yaml.Parse("""
            # comment
            x-env: &env
              A: "1"
            a:
              b: "x: y"
              c: 'it''s'
              d:
                - one
                - "two:2"
              e: ["CMD", "pg_isready"]   # trailing comment
              f:
              g: *env
              h:
                <<: *env
                B: "2"
              i: |
                line
            g: plain:value
            """));
        var a = Assert.IsType<YamlMapping>(root["a"]);
        Assert.Equal("x: y", Assert.IsType<YamlScalar>(a["b"]).Value);
        Assert.Equal("it's", Assert.IsType<YamlScalar>(a["c"]).Value);
        Assert.Equal(["one", "two:2"], Assert.IsType<YamlSequence>(a["d"]).Items.Select(i => ((YamlScalar)i).Value));
        Assert.Equal(["CMD", "pg_isready"], Assert.IsType<YamlSequence>(a["e"]).Items.Select(i => ((YamlScalar)i).Value));
        Assert.Null(Assert.IsType<YamlScalar>(a["f"]).Value);
        Assert.Equal("1", Assert.IsType<YamlScalar>(Assert.IsType<YamlMapping>(a["g"])["A"]).Value);
        Assert.Equal(["A", "B"], Assert.IsType<YamlMapping>(a["h"]).Keys);
        Assert.Equal("line\n", Assert.IsType<YamlScalar>(a["i"]).Value);
        Assert.Equal("plain:value", Assert.IsType<YamlScalar>(root["g"]).Value);
        Assert.Equal(8, a["d"]!.Line); // a block sequence starts at its first item
    }

    [Theory]
    [InlineData("a: 1\na: 2", "duplicate key")]
    [InlineData("a: \"unterminated", "")]
    [InlineData("a:\n  b: 1\n c: 2", "")]
    [InlineData("a: *nowhere", "")]
    [InlineData("a: 1\n---\nb: 2", "more than one document")]
    [InlineData("", "empty document")]
    [InlineData("? [a, b]\n: 1", "mapping key must be a scalar")]
    public void Refuses_what_is_not_one_valid_document(string text, string expected)
    {
        var e = Assert.Throws<YamlFormatException>(() => Yaml.Parse(text));
        Assert.Contains(expected, e.Message, StringComparison.OrdinalIgnoreCase);
    }
}
