using System.Text.RegularExpressions;

namespace TaggedMirror.Deployment.Tests;

/// <summary>The repository checkout the tests run in, found by walking up to TaggedMirror.sln.</summary>
public static partial class Repo
{
    public static string Root { get; } = FindRoot();

    public static string PathOf(string relative) => Path.GetFullPath(Path.Combine(Root, relative));

    public static string Read(string relative) => File.ReadAllText(PathOf(relative));

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "TaggedMirror.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException($"TaggedMirror.sln not found above {AppContext.BaseDirectory}");
    }

    /// <summary>The project under src/ and every project it references, transitively (names like "Hosting").</summary>
    public static IReadOnlyList<string> ProjectClosure(string project)
    {
        var seen = new List<string>();
        var pending = new Stack<string>([project]);
        while (pending.TryPop(out var name))
        {
            if (seen.Contains(name)) continue;
            seen.Add(name);
            var csproj = PathOf($"src/{name}/{name}.csproj");
            if (!File.Exists(csproj)) continue;
            foreach (Match m in ProjectReferencePattern().Matches(File.ReadAllText(csproj)))
                pending.Push(m.Groups["name"].Value);
        }
        return seen;
    }

    /// <summary>Whether the project talks to Kafka: everything that does references src/KafkaNative.</summary>
    public static bool UsesKafka(string project) => ProjectClosure(project).Contains("KafkaNative");

    [GeneratedRegex(@"<ProjectReference\s+Include=""\.\./(?<name>[A-Za-z0-9_.]+)/\k<name>\.csproj""")]
    private static partial Regex ProjectReferencePattern();
}

/// <summary>An options class as its source declares it: the configuration section and its settable properties.</summary>
public sealed record OptionsClass(string File, string Section, IReadOnlyDictionary<string, string> PropertyTypes);

/// <summary>Reads options classes from C# source text (no reflection: the tests reference no project).</summary>
public static partial class OptionsSource
{
    /// <summary>Every class in the projects' sources that declares <c>public const string Section = "…";</c>.</summary>
    public static IReadOnlyList<OptionsClass> InProjects(IEnumerable<string> projects)
    {
        var result = new List<OptionsClass>();
        foreach (var project in projects)
        {
            var dir = Repo.PathOf($"src/{project}");
            if (!Directory.Exists(dir)) continue;
            foreach (var file in Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                    || file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
                {
                    continue;
                }

                if (Parse(file, File.ReadAllText(file)) is { } options) result.Add(options);
            }
        }
        return result;
    }

    public static OptionsClass? Parse(string file, string source)
    {
        var sections = SectionPattern().Matches(source);
        if (sections.Count == 0) return null;
        if (sections.Count > 1) throw new InvalidOperationException($"{file}: more than one Section constant; split the options classes");
        var properties = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (Match m in PropertyPattern().Matches(source))
            properties[m.Groups["name"].Value] = m.Groups["type"].Value;
        return new OptionsClass(file, sections[0].Groups["section"].Value, properties);
    }

    [GeneratedRegex(@"public\s+const\s+string\s+Section\s*=\s*""(?<section>[A-Za-z0-9_]+)""\s*;")]
    private static partial Regex SectionPattern();

    [GeneratedRegex(@"public\s+(?<type>[A-Za-z0-9_.<>?]+)\s+(?<name>[A-Z][A-Za-z0-9_]*)\s*\{\s*get;\s*set;\s*\}")]
    private static partial Regex PropertyPattern();
}
