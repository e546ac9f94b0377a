using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using RM = YamlDotNet.RepresentationModel;

namespace TaggedMirror.Deployment.Tests;

/// <summary>A node of a YAML document, as the checks read it (line numbers for messages).</summary>
public abstract record YamlNode(int Line);

/// <summary>A scalar; <c>null</c> for a key with nothing after it (or <c>~</c>, <c>null</c>).</summary>
public sealed record YamlScalar(int Line, string? Value) : YamlNode(Line);

/// <summary>A sequence, block (<c>- a</c>) or flow (<c>["a", "b"]</c>).</summary>
public sealed record YamlSequence(int Line, IReadOnlyList<YamlNode> Items) : YamlNode(Line);

/// <summary>A mapping, keys in file order.</summary>
public sealed record YamlMapping(int Line, IReadOnlyList<KeyValuePair<string, YamlNode>> Entries) : YamlNode(Line)
{
    public YamlNode? this[string key] => Entries.FirstOrDefault(e => e.Key == key).Value;

    public IEnumerable<string> Keys => Entries.Select(e => e.Key);
}

/// <summary>The text is not valid YAML, or not one document whose mapping keys are scalars.</summary>
public sealed class YamlFormatException(int line, string message) : Exception($"line {line}: {message}")
{
    public int Line { get; } = line;
}

/// <summary>
/// Reads YAML with YamlDotNet (anchors, aliases and merge keys resolved, block scalars, flow collections: what
/// Docker Compose accepts) into the small immutable tree the checks walk. Duplicate keys and more than one
/// document are refused, as Compose refuses them.
/// </summary>
public static class Yaml
{
    public static YamlNode Parse(string text)
    {
        var stream = new RM.YamlStream();
        try
        {
            // The merging parser resolves "<<: *anchor" the way Compose does.
            stream.Load(new MergingParser(new Parser(new StringReader(text))));
        }
        catch (YamlException e)
        {
            throw new YamlFormatException((int)e.Start.Line, Innermost(e).Message);
        }
        catch (ArgumentException e)
        {
            // The representation model refuses a second entry with the same key.
            throw new YamlFormatException(0, $"duplicate key ({e.Message})");
        }
        return stream.Documents.Count switch
        {
            0 => throw new YamlFormatException(1, "empty document"),
            1 => Convert(stream.Documents[0].RootNode),
            _ => throw new YamlFormatException((int)stream.Documents[1].RootNode.Start.Line, "more than one document"),
        };
    }

    private static Exception Innermost(Exception e) => e.InnerException is { } inner ? Innermost(inner) : e;

    private static YamlNode Convert(RM.YamlNode node)
    {
        var line = (int)node.Start.Line;
        return node switch
        {
            RM.YamlScalarNode s => new YamlScalar(line, s.Style == ScalarStyle.Plain && s.Value is null or "" or "~" or "null" ? null : s.Value),
            RM.YamlSequenceNode q => new YamlSequence(line, [.. q.Children.Select(Convert)]),
            RM.YamlMappingNode m => new YamlMapping(line, [.. m.Children.Select(e => KeyValuePair.Create(
                e.Key is RM.YamlScalarNode { Value: { } key } ? key : throw new YamlFormatException((int)e.Key.Start.Line, "a mapping key must be a scalar"),
                Convert(e.Value)))]),
            _ => throw new YamlFormatException(line, $"unsupported node {node.NodeType}"),
        };
    }
}
