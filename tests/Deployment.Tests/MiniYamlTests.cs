namespace TaggedMirror.Deployment.Tests;

public sealed class MiniYamlTests
{
    [Fact]
    public void Reads_mappings_sequences_scalars_and_flow_lists()
    {
        var root = Assert.IsType<YamlMapping>(MiniYaml.Parse("""
            # comment
            a:
              b: "x: y"
              c: 'it''s'
              d:
                - one
                - "two:2"
              e: ["CMD", "pg_isready"]
              f:
            g: plain:value
            """));
        var a = Assert.IsType<YamlMapping>(root["a"]);
        Assert.Equal("x: y", Assert.IsType<YamlScalar>(a["b"]).Value);
        Assert.Equal("it's", Assert.IsType<YamlScalar>(a["c"]).Value);
        Assert.Equal(["one", "two:2"], Assert.IsType<YamlSequence>(a["d"]).Items.Select(i => ((YamlScalar)i).Value));
        Assert.Equal(["CMD", "pg_isready"], Assert.IsType<YamlSequence>(a["e"]).Items.Select(i => ((YamlScalar)i).Value));
        Assert.Null(Assert.IsType<YamlScalar>(a["f"]).Value);
        Assert.Equal("plain:value", Assert.IsType<YamlScalar>(root["g"]).Value);
    }

    [Theory]
    [InlineData("a: 1\na: 2", "duplicate key")]
    [InlineData("a: &x 1", "unsupported value syntax")]
    [InlineData("a: *x", "unsupported value syntax")]
    [InlineData("a: |\n  text", "unsupported value syntax")]
    [InlineData("a: {b: 1}", "unsupported value syntax")]
    [InlineData("a:\n\tb: 1", "tab character")]
    [InlineData("a: 1 # note", "trailing comments")]
    [InlineData("a:\n  - b: 1", "sequence items must be scalars")]
    [InlineData("a:\n  b: 1\n    c: 2", "unexpected indentation")]
    [InlineData("a: \"unterminated", "unterminated")]
    [InlineData("a: [\"x\", y]", "must be quoted")]
    [InlineData("a: \"esc\\n\"", "escape sequences")]
    [InlineData("---\na: 1", "document markers")]
    [InlineData("a:\n  - x\n  b: 1", "mapping key inside a sequence")]
    public void Rejects_what_is_outside_the_subset(string text, string expected)
    {
        var e = Assert.Throws<YamlSubsetException>(() => MiniYaml.Parse(text));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
