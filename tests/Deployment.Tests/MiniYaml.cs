using System.Text;

namespace TaggedMirror.Deployment.Tests;

/// <summary>A node of the YAML subset <see cref="MiniYaml"/> reads.</summary>
public abstract record YamlNode(int Line);

/// <summary>A scalar; <c>null</c> for a key with nothing after it.</summary>
public sealed record YamlScalar(int Line, string? Value) : YamlNode(Line);

/// <summary>A sequence, block (<c>- a</c>) or flow of scalars (<c>["a", "b"]</c>).</summary>
public sealed record YamlSequence(int Line, IReadOnlyList<YamlNode> Items) : YamlNode(Line);

/// <summary>A block mapping, keys in file order.</summary>
public sealed record YamlMapping(int Line, IReadOnlyList<KeyValuePair<string, YamlNode>> Entries) : YamlNode(Line)
{
    public YamlNode? this[string key] => Entries.FirstOrDefault(e => e.Key == key).Value;

    public IEnumerable<string> Keys => Entries.Select(e => e.Key);
}

/// <summary>The input is outside the subset, or is not valid YAML.</summary>
public sealed class YamlSubsetException(int line, string message) : Exception($"line {line}: {message}")
{
    public int Line { get; } = line;
}

/// <summary>
/// A strict reader for the YAML subset docker-compose.yml keeps to (no YAML package is obtainable here):
/// block mappings and block sequences by indentation (spaces only), plain / double-quoted / single-quoted
/// scalars, flow sequences of scalars (<c>["a", "b"]</c>), full-line comments. Anything else (anchors,
/// aliases, merge keys, tags, block scalars, flow mappings, trailing comments, tabs, duplicate keys,
/// sequence items that are mappings, documents markers) is rejected rather than guessed at.
/// </summary>
public static class MiniYaml
{
    private sealed record Line(int Number, int Indent, string Text);

    public static YamlNode Parse(string text)
    {
        var lines = new List<Line>();
        var raw = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        for (var i = 0; i < raw.Length; i++)
        {
            var number = i + 1;
            var line = raw[i].TrimEnd(' ');
            if (line.Contains('\t', StringComparison.Ordinal)) throw new YamlSubsetException(number, "tab character");
            var content = line.TrimStart(' ');
            if (content.Length == 0 || content[0] == '#') continue;
            if (content.StartsWith("---", StringComparison.Ordinal) || content.StartsWith("...", StringComparison.Ordinal))
                throw new YamlSubsetException(number, "document markers are not supported");
            lines.Add(new Line(number, line.Length - content.Length, content));
        }
        if (lines.Count == 0) throw new YamlSubsetException(1, "empty document");
        if (lines[0].Indent != 0) throw new YamlSubsetException(lines[0].Number, "document must start at column 0");
        var index = 0;
        var root = ParseBlock(lines, ref index, 0);
        if (index < lines.Count) throw new YamlSubsetException(lines[index].Number, "unexpected indentation");
        return root;
    }

    private static bool IsSequenceItem(string content) => content == "-" || content.StartsWith("- ", StringComparison.Ordinal);

    private static YamlNode ParseBlock(List<Line> lines, ref int index, int indent) =>
        IsSequenceItem(lines[index].Text) ? ParseSequence(lines, ref index, indent) : ParseMapping(lines, ref index, indent);

    private static YamlSequence ParseSequence(List<Line> lines, ref int index, int indent)
    {
        var start = lines[index].Number;
        var items = new List<YamlNode>();
        while (index < lines.Count && lines[index].Indent == indent)
        {
            var line = lines[index];
            if (!IsSequenceItem(line.Text)) throw new YamlSubsetException(line.Number, "mapping key inside a sequence");
            var item = line.Text.Length == 1 ? "" : line.Text[2..].TrimStart(' ');
            if (item.Length == 0) throw new YamlSubsetException(line.Number, "empty or nested sequence items are not supported");
            if (IsSequenceItem(item) || FindKeySeparator(item) >= 0)
                throw new YamlSubsetException(line.Number, "sequence items must be scalars");
            items.Add(ParseValue(item, line.Number));
            index++;
        }
        if (index < lines.Count && lines[index].Indent > indent)
            throw new YamlSubsetException(lines[index].Number, "unexpected indentation");
        return new YamlSequence(start, items);
    }

    private static YamlMapping ParseMapping(List<Line> lines, ref int index, int indent)
    {
        var start = lines[index].Number;
        var entries = new List<KeyValuePair<string, YamlNode>>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (index < lines.Count && lines[index].Indent == indent)
        {
            var line = lines[index];
            if (IsSequenceItem(line.Text)) throw new YamlSubsetException(line.Number, "sequence item inside a mapping");
            var colon = FindKeySeparator(line.Text);
            if (colon < 0) throw new YamlSubsetException(line.Number, "expected 'key:' or 'key: value'");
            var key = line.Text[..colon];
            if (key.Length == 0 || !key.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.'))
                throw new YamlSubsetException(line.Number, $"unsupported key '{key}'");
            if (!seen.Add(key)) throw new YamlSubsetException(line.Number, $"duplicate key '{key}'");
            var rest = line.Text[(colon + 1)..].TrimStart(' ');
            index++;
            YamlNode value;
            if (rest.Length > 0)
            {
                value = ParseValue(rest, line.Number);
            }
            else if (index < lines.Count && lines[index].Indent > indent)
            {
                value = ParseBlock(lines, ref index, lines[index].Indent);
            }
            else
            {
                value = new YamlScalar(line.Number, null);
            }
            entries.Add(new(key, value));
        }
        if (index < lines.Count && lines[index].Indent > indent)
            throw new YamlSubsetException(lines[index].Number, "unexpected indentation");
        return new YamlMapping(start, entries);
    }

    /// <summary>Index of the ':' that ends a plain key (followed by a space or the end of line), or -1.</summary>
    private static int FindKeySeparator(string content)
    {
        if (content.Length == 0 || content[0] is '"' or '\'' or '[' or '{') return -1;
        for (var i = 0; i < content.Length; i++)
        {
            if (content[i] == ':' && (i + 1 == content.Length || content[i + 1] == ' ')) return i;
        }
        return -1;
    }

    private static YamlNode ParseValue(string text, int line)
    {
        switch (text[0])
        {
            case '&' or '*' or '!' or '|' or '>' or '{' or '%' or '@' or '`':
                throw new YamlSubsetException(line, $"unsupported value syntax '{text[0]}'");
            case '[':
                return ParseFlowSequence(text, line);
            case '"' or '\'':
                var pos = 0;
                var value = ReadQuoted(text, ref pos, line);
                if (pos != text.Length) throw new YamlSubsetException(line, "text after a quoted scalar");
                return new YamlScalar(line, value);
            default:
                if (text.StartsWith("<<", StringComparison.Ordinal)) throw new YamlSubsetException(line, "merge keys are not supported");
                if (text.Contains(" #", StringComparison.Ordinal)) throw new YamlSubsetException(line, "trailing comments are not supported");
                if (FindKeySeparator(text) >= 0) throw new YamlSubsetException(line, "nested 'key: value' on one line");
                return new YamlScalar(line, text);
        }
    }

    private static YamlSequence ParseFlowSequence(string text, int line)
    {
        if (text[^1] != ']') throw new YamlSubsetException(line, "flow sequence must end the line with ']'");
        var items = new List<YamlNode>();
        var pos = 1;
        SkipSpaces(text, ref pos);
        if (text[pos] == ']')
        {
            if (pos != text.Length - 1) throw new YamlSubsetException(line, "text after ']'");
            return new YamlSequence(line, items);
        }
        while (true)
        {
            if (text[pos] is not ('"' or '\'')) throw new YamlSubsetException(line, "flow sequence items must be quoted scalars");
            items.Add(new YamlScalar(line, ReadQuoted(text, ref pos, line)));
            SkipSpaces(text, ref pos);
            if (pos >= text.Length) throw new YamlSubsetException(line, "unterminated flow sequence");
            if (text[pos] == ']')
            {
                if (pos != text.Length - 1) throw new YamlSubsetException(line, "text after ']'");
                return new YamlSequence(line, items);
            }
            if (text[pos] != ',') throw new YamlSubsetException(line, "expected ',' or ']'");
            pos++;
            SkipSpaces(text, ref pos);
            if (pos >= text.Length) throw new YamlSubsetException(line, "unterminated flow sequence");
        }
    }

    private static void SkipSpaces(string text, ref int pos)
    {
        while (pos < text.Length && text[pos] == ' ') pos++;
    }

    /// <summary>Reads a quoted scalar starting at <paramref name="pos"/>; escapes are rejected except '' in single quotes.</summary>
    private static string ReadQuoted(string text, ref int pos, int line)
    {
        var quote = text[pos];
        var result = new StringBuilder();
        pos++;
        while (pos < text.Length)
        {
            var c = text[pos];
            if (quote == '"' && c == '\\') throw new YamlSubsetException(line, "escape sequences are not supported");
            if (c == quote)
            {
                if (quote == '\'' && pos + 1 < text.Length && text[pos + 1] == '\'')
                {
                    result.Append('\'');
                    pos += 2;
                    continue;
                }
                pos++;
                return result.ToString();
            }
            result.Append(c);
            pos++;
        }
        throw new YamlSubsetException(line, "unterminated quoted scalar");
    }
}
