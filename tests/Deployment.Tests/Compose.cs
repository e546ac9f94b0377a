using System.Text.RegularExpressions;

namespace TaggedMirror.Deployment.Tests;

/// <summary>docker-compose.yml read through <see cref="Yaml"/>, with the few shapes the checks need.</summary>
public sealed class ComposeFile
{
    private ComposeFile(YamlMapping root, IReadOnlyList<ComposeService> services, IReadOnlyList<string> volumes)
    {
        Root = root;
        Services = services;
        NamedVolumes = volumes;
    }

    public YamlMapping Root { get; }

    public IReadOnlyList<ComposeService> Services { get; }

    /// <summary>Keys of the top-level <c>volumes:</c>.</summary>
    public IReadOnlyList<string> NamedVolumes { get; }

    public ComposeService? this[string name] => Services.FirstOrDefault(s => s.Name == name);

    public static ComposeFile Load() => Parse(Repo.Read("docker-compose.yml"));

    public static ComposeFile Parse(string text)
    {
        if (Yaml.Parse(text) is not YamlMapping root) throw new FormatException("compose file must be a mapping");
        if (root["services"] is not YamlMapping services) throw new FormatException("compose file has no services mapping");
        var list = services.Entries.Select(e => e.Value is YamlMapping m
            ? new ComposeService(e.Key, m)
            : throw new FormatException($"service {e.Key} is not a mapping")).ToList();
        var volumes = root["volumes"] switch
        {
            null => [],
            YamlMapping m => m.Keys.ToList(),
            _ => throw new FormatException("top-level volumes must be a mapping"),
        };
        return new ComposeFile(root, list, volumes);
    }
}

/// <summary>One service of the compose file.</summary>
public sealed class ComposeService(string name, YamlMapping node)
{
    public string Name { get; } = name;

    public YamlMapping Node { get; } = node;

    public string? Scalar(string key) => Node[key] is YamlScalar s ? s.Value : null;

    /// <summary>The environment, which must be written as a mapping (<c>KEY: "value"</c>).</summary>
    public IReadOnlyDictionary<string, string> Environment => Node["environment"] switch
    {
        null => new Dictionary<string, string>(),
        YamlMapping m => m.Entries.ToDictionary(e => e.Key, e => (e.Value as YamlScalar)?.Value
            ?? throw new FormatException($"{Name}: environment {e.Key} must be a scalar"), StringComparer.Ordinal),
        _ => throw new FormatException($"{Name}: environment must be a mapping (KEY: value)"),
    };

    public IReadOnlyList<string> Ports => Strings("ports");

    public IReadOnlyList<string> Volumes => Strings("volumes");

    /// <summary><c>depends_on</c> in its long form: service name to condition.</summary>
    public IReadOnlyDictionary<string, string> DependsOn => Node["depends_on"] switch
    {
        null => new Dictionary<string, string>(),
        YamlMapping m => m.Entries.ToDictionary(
            e => e.Key,
            e => e.Value is YamlMapping c && c["condition"] is YamlScalar { Value: { } v } ? v
                : throw new FormatException($"{Name}: depends_on {e.Key} needs a condition"),
            StringComparer.Ordinal),
        _ => throw new FormatException($"{Name}: depends_on must be the long form (name: {{condition: …}})"),
    };

    /// <summary>The healthcheck's <c>test</c> as a list of words, or null without a healthcheck.</summary>
    public IReadOnlyList<string>? HealthcheckTest => Node["healthcheck"] is YamlMapping h && h["test"] is YamlSequence s
        ? s.Items.Select(i => (i as YamlScalar)?.Value ?? "").ToList()
        : null;

    /// <summary>(context, dockerfile) of <c>build:</c>, or null for an image-only service.</summary>
    public (string Context, string Dockerfile)? Build => Node["build"] switch
    {
        null => null,
        YamlMapping b => (
            (b["context"] as YamlScalar)?.Value ?? ".",
            (b["dockerfile"] as YamlScalar)?.Value ?? "Dockerfile"),
        _ => throw new FormatException($"{Name}: build must be a mapping with context and dockerfile"),
    };

    private List<string> Strings(string key) => Node[key] switch
    {
        null => [],
        YamlSequence s => s.Items.Select(i => (i as YamlScalar)?.Value
            ?? throw new FormatException($"{Name}: {key} items must be scalars")).ToList(),
        _ => throw new FormatException($"{Name}: {key} must be a sequence"),
    };
}

/// <summary>A Dockerfile split into stages of instructions (line continuations joined, comments dropped).</summary>
public sealed partial class Dockerfile
{
    private Dockerfile(IReadOnlyList<IReadOnlyList<(string Op, string Args)>> stages) => Stages = stages;

    public IReadOnlyList<IReadOnlyList<(string Op, string Args)>> Stages { get; }

    public IReadOnlyList<(string Op, string Args)> FinalStage => Stages[^1];

    public IEnumerable<(string Op, string Args)> All => Stages.SelectMany(s => s);

    public static Dockerfile Parse(string text)
    {
        var stages = new List<List<(string, string)>>();
        var logical = "";
        foreach (var raw in text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n'))
        {
            var line = raw.Trim();
            if (line.StartsWith('#')) continue;
            if (line.EndsWith('\\'))
            {
                logical += line[..^1] + " ";
                continue;
            }
            logical += line;
            var instruction = logical.Trim();
            logical = "";
            if (instruction.Length == 0) continue;
            var space = instruction.IndexOf(' ', StringComparison.Ordinal);
            var op = (space < 0 ? instruction : instruction[..space]).ToUpperInvariant();
            var args = space < 0 ? "" : instruction[(space + 1)..].Trim();
            if (op == "FROM") stages.Add([]);
            if (stages.Count == 0) throw new FormatException($"instruction before FROM: {instruction}");
            stages[^1].Add((op, args));
        }
        if (stages.Count == 0) throw new FormatException("no FROM");
        return new Dockerfile(stages);
    }

    /// <summary>The path given to <c>dotnet publish</c>, or null.</summary>
    public string? PublishedPath => All.Where(i => i.Op == "RUN")
        .Select(i => PublishPattern().Match(i.Args))
        .Where(m => m.Success)
        .Select(m => m.Groups["path"].Value.TrimEnd('/'))
        .FirstOrDefault();

    /// <summary>Source paths of COPY instructions that copy from the build context (not <c>--from</c>).</summary>
    public IEnumerable<string> ContextCopySources => All
        .Where(i => i.Op == "COPY" && !i.Args.Contains("--from", StringComparison.Ordinal))
        .SelectMany(i =>
        {
            var words = i.Args.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(w => !w.StartsWith("--", StringComparison.Ordinal)).ToArray();
            return words[..^1];
        });

    /// <summary>The exec-form ENTRYPOINT of the final stage as words.</summary>
    public IReadOnlyList<string> Entrypoint => FinalStage.Where(i => i.Op == "ENTRYPOINT")
        .Select(i => ExecWord().Matches(i.Args).Select(m => m.Groups[1].Value).ToList())
        .LastOrDefault() ?? [];

    [GeneratedRegex(@"dotnet\s+publish\s+(?<path>[^\s]+)")]
    private static partial Regex PublishPattern();

    [GeneratedRegex(@"""([^""]*)""")]
    private static partial Regex ExecWord();
}
