using System.Globalization;
using System.Text.RegularExpressions;

namespace TaggedMirror.Deployment.Tests;

/// <summary>
/// What docker-compose.yml and deploy/ must agree on with the code. Each check returns its problems as
/// sentences (empty when fine), so the same checks run on the real file and on broken copies of it.
/// </summary>
public sealed partial class DeploymentChecks(ComposeFile compose)
{
    public static readonly string[] RequiredServices = ["kafka", "kafka-init", "postgres", "rabbitmq", "jaeger", "otel-collector", "controller", "agent-d0", "agent-d1"];

    private static readonly string[] SharedKeys = ["Postgres", "Kafka", "RabbitMqHost", "RabbitMqUser", "RabbitMqPassword", "Cluster"];
    private static readonly string[] AgentKeys = ["DeviceId", "DataDirectory", "PublicUrl"];
    private static readonly string[] ControllerKeys = ["Id"];
    private static readonly string[] PlainKeys = ["ASPNETCORE_URLS", "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"];
    private static readonly string[] Conditions = ["service_started", "service_healthy", "service_completed_successfully"];

    public ComposeFile Compose { get; } = compose;

    /// <summary>Services built from a Dockerfile, with the src/ project the Dockerfile publishes (null when it names none).</summary>
    public IEnumerable<(ComposeService Service, string? Project)> AppServices =>
        Compose.Services.Where(s => s.Build is not null).Select(s => (s, ProjectOf(s)));

    public IEnumerable<ComposeService> Agents => AppServices.Where(a => a.Project == "DeviceAgent").Select(a => a.Service);

    public IEnumerable<ComposeService> Controllers => AppServices.Where(a => a.Project == "Controller").Select(a => a.Service);

    public static IReadOnlyList<string> Run(string composeText)
    {
        DeploymentChecks checks;
        try
        {
            checks = new DeploymentChecks(ComposeFile.Parse(composeText));
        }
        catch (Exception e) when (e is YamlFormatException or FormatException)
        {
            return [$"compose file: {e.Message}"];
        }
        return checks.All();
    }

    public IReadOnlyList<string> All()
    {
        var problems = new List<string>();
        foreach (var check in new Func<IEnumerable<string>>[]
        {
            ServicesExist, Dockerfiles, EnvironmentNames, EnvironmentValues, Hosts, AgentIdentity,
            PublishedPorts, NamedVolumes, DependsOn, KafkaInit, Collector,
        })
        {
            try
            {
                problems.AddRange(check());
            }
            catch (FormatException e)
            {
                problems.Add(e.Message);
            }
        }
        return problems;
    }

    public IEnumerable<string> ServicesExist()
    {
        foreach (var name in RequiredServices)
        {
            if (Compose[name] is null) yield return $"service '{name}' is missing";
        }
        if (!Controllers.Any()) yield return "no service is built from src/Controller";
        if (Agents.Count() < 2) yield return "fewer than two services are built from src/DeviceAgent (nothing to mirror)";
    }

    public IEnumerable<string> Dockerfiles()
    {
        foreach (var service in Compose.Services)
        {
            if (service.Build is not { } build) continue;
            var context = Repo.PathOf(build.Context);
            var path = Path.Combine(context, build.Dockerfile);
            if (!File.Exists(path))
            {
                yield return $"{service.Name}: Dockerfile {build.Dockerfile} (context {build.Context}) does not exist";
                continue;
            }
            var docker = Dockerfile.Parse(File.ReadAllText(path));
            var published = docker.PublishedPath;
            if (published is null)
            {
                yield return $"{service.Name}: {build.Dockerfile} runs no 'dotnet publish'";
                continue;
            }
            var match = SrcProject().Match(published);
            if (!match.Success)
            {
                yield return $"{service.Name}: {build.Dockerfile} publishes '{published}', not a project under src/";
                continue;
            }
            var project = match.Groups["name"].Value;
            if (!File.Exists(Path.Combine(context, "src", project, project + ".csproj")))
            {
                yield return $"{service.Name}: {build.Dockerfile} publishes src/{project}, which has no {project}.csproj";
                continue;
            }
            foreach (var source in docker.ContextCopySources)
            {
                if (!File.Exists(Path.Combine(context, source)) && !Directory.Exists(Path.Combine(context, source)))
                    yield return $"{service.Name}: {build.Dockerfile} copies '{source}', which does not exist";
            }
            var copied = docker.ContextCopySources.ToHashSet(StringComparer.Ordinal);
            foreach (var needed in new[] { "global.json", "nuget.config", "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props" })
            {
                if (!copied.Contains(needed)) yield return $"{service.Name}: {build.Dockerfile} does not copy {needed} (the build needs it)";
            }
            var restoreIndex = docker.All.ToList().FindIndex(i => i.Op == "RUN" && i.Args.Contains("dotnet restore", StringComparison.Ordinal));
            if (restoreIndex >= 0)
            {
                var before = docker.All.Take(restoreIndex).Where(i => i.Op == "COPY").Select(i => i.Args).ToList();
                foreach (var reference in Repo.ProjectClosure(project))
                {
                    if (!before.Any(a => a.Contains($"src/{reference}/{reference}.csproj", StringComparison.Ordinal)))
                        yield return $"{service.Name}: {build.Dockerfile} runs dotnet restore before copying src/{reference}/{reference}.csproj (a project {project} references)";
                }
            }
            var entry = docker.Entrypoint;
            var dll = $"TaggedMirror.{project}.dll";
            if (entry.Count != 2 || entry[0] != "dotnet" || entry[1] != dll)
                yield return $"{service.Name}: {build.Dockerfile} ENTRYPOINT should be [\"dotnet\", \"{dll}\"], is [{string.Join(", ", entry)}]";
            var final = docker.FinalStage;
            if (!final[0].Args.StartsWith("mcr.microsoft.com/dotnet/aspnet:10.0", StringComparison.Ordinal))
                yield return $"{service.Name}: {build.Dockerfile} final stage is not the aspnet:10.0 runtime";
            var user = final.LastOrDefault(i => i.Op == "USER").Args;
            if (user is null or "root" or "0" or "0:0")
                yield return $"{service.Name}: {build.Dockerfile} final stage runs as root";
            if (!final.Any(i => i.Op == "EXPOSE" && i.Args.Split(' ').Contains("8080")))
                yield return $"{service.Name}: {build.Dockerfile} does not EXPOSE 8080";
            if (Repo.UsesKafka(project))
            {
                // The publish output carries librdkafka.redist's library; a distribution librdkafka (Debian's and
                // Ubuntu's are older than the client's) would only be a second copy for the loader to pick up.
                var installs = final.Where(i => i.Op == "RUN").Select(i => i.Args).ToList();
                if (installs.Any(r => r.Contains("apt-get install", StringComparison.Ordinal) && r.Contains("librdkafka", StringComparison.Ordinal)))
                    yield return $"{service.Name}: {build.Dockerfile} final stage installs a distribution librdkafka ({project} runs on librdkafka.redist's)";
            }
        }
    }

    public IEnumerable<string> EnvironmentNames()
    {
        foreach (var (service, project) in AppServices)
        {
            if (project is null) continue;
            var options = OptionsSource.InProjects(Repo.ProjectClosure(project));
            var bySection = options.ToDictionary(o => o.Section, StringComparer.Ordinal);
            var env = service.Environment;
            foreach (var key in env.Keys)
            {
                var parts = key.Split("__");
                if (parts.Length == 1)
                {
                    if (!key.StartsWith("OTEL_", StringComparison.Ordinal) && !key.StartsWith("ASPNETCORE_", StringComparison.Ordinal)
                        && !key.StartsWith("DOTNET_", StringComparison.Ordinal))
                    {
                        yield return $"{service.Name}: environment {key} is neither an options setting (Section__Name) nor an OTEL_/ASPNETCORE_/DOTNET_ variable";
                    }

                    continue;
                }
                if (parts[0] == "Logging") continue;
                if (!bySection.TryGetValue(parts[0], out var section))
                {
                    yield return $"{service.Name}: environment {key}: no options section '{parts[0]}' in src/{project} or its references (sections: {string.Join(", ", bySection.Keys.Order(StringComparer.Ordinal))})";
                    continue;
                }
                if (parts.Length != 2)
                {
                    yield return $"{service.Name}: environment {key}: options are flat, expected {parts[0]}__Name";
                    continue;
                }
                if (!section.PropertyTypes.ContainsKey(parts[1]))
                    yield return $"{service.Name}: environment {key}: {Path.GetFileName(section.File)} has no property '{parts[1]}' (has {string.Join(", ", section.PropertyTypes.Keys)})";
            }
            var required = PlainKeys.Concat(SharedKeys.Select(k => "TaggedMirror__" + k))
                .Concat(project switch
                {
                    "DeviceAgent" => AgentKeys.Select(k => "Agent__" + k),
                    "Controller" => ControllerKeys.Select(k => "Controller__" + k),
                    _ => [],
                });
            foreach (var key in required)
            {
                if (!env.ContainsKey(key)) yield return $"{service.Name}: environment {key} is missing";
            }
        }
    }

    public IEnumerable<string> EnvironmentValues()
    {
        var serviceNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (service, project) in AppServices)
        {
            if (project is null) continue;
            var env = service.Environment;
            var bySection = OptionsSource.InProjects(Repo.ProjectClosure(project)).ToDictionary(o => o.Section, StringComparer.Ordinal);
            foreach (var (key, value) in env)
            {
                var parts = key.Split("__");
                if (parts.Length != 2 || !bySection.TryGetValue(parts[0], out var section)
                    || !section.PropertyTypes.TryGetValue(parts[1], out var type))
                {
                    continue;
                }

                var ok = type switch
                {
                    "int" => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _),
                    "long" => long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _),
                    "ushort" => ushort.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _),
                    "bool" => bool.TryParse(value, out _),
                    "TimeSpan" => TimeSpan.TryParse(value, CultureInfo.InvariantCulture, out _),
                    _ => true,
                };
                if (!ok) yield return $"{service.Name}: {key}='{value}' does not parse as {type}";
            }
            if (env.TryGetValue("OTEL_SERVICE_NAME", out var otelName))
            {
                if (!serviceNames.Add(otelName)) yield return $"{service.Name}: OTEL_SERVICE_NAME '{otelName}' is used by another service";
                if (!otelName.EndsWith(service.Name, StringComparison.Ordinal))
                    yield return $"{service.Name}: OTEL_SERVICE_NAME '{otelName}' does not end with the service name";
            }
            if (env.TryGetValue("OTEL_EXPORTER_OTLP_PROTOCOL", out var protocol) && env.TryGetValue("OTEL_EXPORTER_OTLP_ENDPOINT", out var endpoint))
            {
                var expected = protocol switch { "http/protobuf" => 4318, "grpc" => 4317, _ => -1 };
                if (expected < 0) yield return $"{service.Name}: OTEL_EXPORTER_OTLP_PROTOCOL '{protocol}' is not grpc or http/protobuf";
                else if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Port != expected)
                    yield return $"{service.Name}: OTEL_EXPORTER_OTLP_ENDPOINT '{endpoint}' should use port {expected} for {protocol}";
            }
            if (env.TryGetValue("ASPNETCORE_URLS", out var urls) && ListenPort(urls) != 8080)
                yield return $"{service.Name}: ASPNETCORE_URLS '{urls}' does not listen on 8080 (the port the image EXPOSEs)";
        }
    }

    public IEnumerable<string> Hosts()
    {
        var postgres = Compose["postgres"]?.Environment;
        var rabbit = Compose["rabbitmq"]?.Environment;
        foreach (var (service, project) in AppServices)
        {
            if (project is null) continue;
            var env = service.Environment;
            if (env.TryGetValue("TaggedMirror__Postgres", out var pg))
            {
                var parts = ConnectionString(pg);
                if (!parts.TryGetValue("host", out var host)) yield return $"{service.Name}: TaggedMirror__Postgres has no Host";
                else if (Compose[host] is null) yield return $"{service.Name}: TaggedMirror__Postgres host '{host}' is not a service";
                if (postgres is not null)
                {
                    foreach (var (part, variable) in new[] { ("username", "POSTGRES_USER"), ("password", "POSTGRES_PASSWORD"), ("database", "POSTGRES_DB") })
                    {
                        if (parts.GetValueOrDefault(part) != postgres.GetValueOrDefault(variable))
                            yield return $"{service.Name}: TaggedMirror__Postgres {part} does not match postgres {variable}";
                    }
                }
            }
            if (env.TryGetValue("TaggedMirror__Kafka", out var kafka))
            {
                foreach (var server in kafka.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                {
                    var host = server.Split(':')[0];
                    if (Compose[host] is not { } broker)
                    {
                        yield return $"{service.Name}: TaggedMirror__Kafka host '{host}' is not a service";
                    }
                    else if (!broker.Environment.GetValueOrDefault("KAFKA_ADVERTISED_LISTENERS", "").Contains("://" + server, StringComparison.Ordinal))
                    {
                        yield return $"{service.Name}: TaggedMirror__Kafka '{server}' is not an advertised listener of {host}";
                    }
                }
            }
            if (env.TryGetValue("TaggedMirror__RabbitMqHost", out var rabbitHost) && Compose[rabbitHost] is null)
                yield return $"{service.Name}: TaggedMirror__RabbitMqHost '{rabbitHost}' is not a service";
            if (rabbit is not null)
            {
                if (env.GetValueOrDefault("TaggedMirror__RabbitMqUser") != rabbit.GetValueOrDefault("RABBITMQ_DEFAULT_USER"))
                    yield return $"{service.Name}: TaggedMirror__RabbitMqUser does not match rabbitmq RABBITMQ_DEFAULT_USER";
                if (env.GetValueOrDefault("TaggedMirror__RabbitMqPassword") != rabbit.GetValueOrDefault("RABBITMQ_DEFAULT_PASS"))
                    yield return $"{service.Name}: TaggedMirror__RabbitMqPassword does not match rabbitmq RABBITMQ_DEFAULT_PASS";
            }
            foreach (var key in new[] { "OTEL_EXPORTER_OTLP_ENDPOINT", "Agent__PublicUrl" })
            {
                if (!env.TryGetValue(key, out var url)) continue;
                if (!Uri.TryCreate(url, UriKind.Absolute, out var uri)) yield return $"{service.Name}: {key} '{url}' is not a URL";
                else if (Compose[uri.Host] is null) yield return $"{service.Name}: {key} host '{uri.Host}' is not a service";
            }
        }
    }

    public IEnumerable<string> AgentIdentity()
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var agent in Agents)
        {
            var env = agent.Environment;
            if (!env.TryGetValue("Agent__DeviceId", out var id)) continue;
            if (!DeviceName().IsMatch(id)) yield return $"{agent.Name}: Agent__DeviceId '{id}' is not a valid device name";
            if (!ids.Add(id)) yield return $"{agent.Name}: Agent__DeviceId '{id}' is used by another agent";
            if (agent.Name != "agent-" + id) yield return $"{agent.Name}: Agent__DeviceId '{id}' does not match the service name (expected agent-{id})";
            if (env.TryGetValue("Agent__PublicUrl", out var url) && Uri.TryCreate(url, UriKind.Absolute, out var uri))
            {
                if (uri.Host != agent.Name) yield return $"{agent.Name}: Agent__PublicUrl host '{uri.Host}' is not this agent's service name";
                if (env.TryGetValue("ASPNETCORE_URLS", out var urls) && uri.Port != ListenPort(urls))
                    yield return $"{agent.Name}: Agent__PublicUrl port {uri.Port} is not the port the agent listens on";
            }
        }
    }

    public IEnumerable<string> PublishedPorts()
    {
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var service in Compose.Services)
        {
            foreach (var port in service.Ports)
            {
                var parts = port.Split(':');
                if (parts.Length != 2 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out _) || !int.TryParse(parts[1], CultureInfo.InvariantCulture, out _))
                {
                    yield return $"{service.Name}: port '{port}' is not HOST:CONTAINER";
                    continue;
                }
                if (seen.TryGetValue(parts[0], out var other)) yield return $"{service.Name}: host port {parts[0]} is also published by {other}";
                else seen[parts[0]] = service.Name;
            }
        }
        foreach (var (service, _) in AppServices)
        {
            if (!service.Ports.Any(p => p.EndsWith(":8080", StringComparison.Ordinal)))
                yield return $"{service.Name}: container port 8080 is not published";
        }
    }

    public IEnumerable<string> NamedVolumes()
    {
        var owners = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var service in Compose.Services)
        {
            foreach (var volume in service.Volumes)
            {
                var source = volume.Split(':')[0];
                if (source.StartsWith('.') || source.StartsWith('/'))
                {
                    if (!File.Exists(Repo.PathOf(source)) && !Directory.Exists(Repo.PathOf(source)))
                        yield return $"{service.Name}: bind mount source '{source}' does not exist";
                    continue;
                }
                if (!Compose.NamedVolumes.Contains(source)) yield return $"{service.Name}: volume '{source}' is not declared under top-level volumes";
                if (owners.TryGetValue(source, out var other)) yield return $"{service.Name}: volume '{source}' is shared with {other}";
                else owners[source] = service.Name;
            }
        }
        foreach (var agent in Agents)
        {
            var dir = agent.Environment.GetValueOrDefault("Agent__DataDirectory");
            if (dir is null) continue;
            var mounted = agent.Volumes.Select(v => v.Split(':')).FirstOrDefault(p => p.Length >= 2 && p[1] == dir);
            if (mounted is null) yield return $"{agent.Name}: no volume is mounted at Agent__DataDirectory '{dir}'";
            else if (mounted[0].StartsWith('.') || mounted[0].StartsWith('/')) yield return $"{agent.Name}: the data directory should be a named volume";
        }
    }

    public IEnumerable<string> DependsOn()
    {
        foreach (var service in Compose.Services)
        {
            foreach (var (target, condition) in service.DependsOn)
            {
                if (Compose[target] is not { } other)
                {
                    yield return $"{service.Name}: depends on '{target}', which is not a service";
                    continue;
                }
                if (!Conditions.Contains(condition)) yield return $"{service.Name}: depends_on {target}: unknown condition '{condition}'";
                if (condition == "service_healthy" && other.HealthcheckTest is null)
                    yield return $"{service.Name}: waits for {target} to be healthy, but {target} has no healthcheck";
            }
        }
        foreach (var (service, _) in AppServices)
        {
            foreach (var (target, condition) in new[] { ("postgres", "service_healthy"), ("rabbitmq", "service_healthy"), ("kafka", "service_healthy"), ("kafka-init", "service_completed_successfully") })
            {
                if (service.DependsOn.GetValueOrDefault(target) != condition)
                    yield return $"{service.Name}: should depend on {target} with condition {condition}";
            }
        }
        foreach (var (name, word) in new[] { ("postgres", "pg_isready"), ("rabbitmq", "rabbitmq-diagnostics"), ("kafka", "kafka-topics.sh") })
        {
            if (Compose[name] is { } service && (service.HealthcheckTest is not { } test || !test.Any(w => w.EndsWith(word, StringComparison.Ordinal))))
                yield return $"{name}: healthcheck should run {word}";
        }
    }

    public IEnumerable<string> KafkaInit()
    {
        if (Compose["kafka-init"] is not { } init) yield break;
        var devices = init.Environment.GetValueOrDefault("TM_DEVICES", "").Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        var agents = Agents.Select(a => a.Environment.GetValueOrDefault("Agent__DeviceId")).OfType<string>().ToHashSet(StringComparer.Ordinal);
        if (!devices.SetEquals(agents))
            yield return $"kafka-init: TM_DEVICES '{string.Join(" ", devices)}' does not list exactly the agents' device ids '{string.Join(" ", agents.Order(StringComparer.Ordinal))}'";
        var bootstrap = init.Environment.GetValueOrDefault("KAFKA_BOOTSTRAP", "");
        if (Compose[bootstrap.Split(':')[0]] is null) yield return $"kafka-init: KAFKA_BOOTSTRAP '{bootstrap}' is not a service";
        var script = init.Volumes.Select(v => v.Split(':')[0]).FirstOrDefault(s => s.EndsWith(".sh", StringComparison.Ordinal));
        if (script is null || !File.Exists(Repo.PathOf(script)))
        {
            yield return "kafka-init: no topic-creation script is mounted";
            yield break;
        }
        var text = File.ReadAllText(Repo.PathOf(script));
        var prefix = DevicePrefix().Match(Repo.Read("src/Contracts/Topics.cs")).Groups["prefix"].Value;
        if (prefix.Length == 0 || !text.Contains($"\"{prefix}${{device}}\"", StringComparison.Ordinal))
            yield return $"kafka-init: {script} does not create topics named {prefix}<device> (Contracts.Topics.DevicePrefix)";
        if (!text.Contains("retention.ms=-1", StringComparison.Ordinal)) yield return $"kafka-init: {script} does not set retention.ms=-1";
        if (!text.Contains("--partitions 1", StringComparison.Ordinal)) yield return $"kafka-init: {script} does not create one partition";
        if (init.Node["entrypoint"] is not YamlSequence entry
            || !entry.Items.OfType<YamlScalar>().Any(i => init.Volumes.Any(v => v.Split(':').ElementAtOrDefault(1) == i.Value)))
        {
            yield return "kafka-init: entrypoint does not run the mounted script";
        }
    }

    /// <summary>
    /// The OpenTelemetry Collector the processes export to: it mounts its configuration, receives OTLP on the
    /// port they send to, sends traces to a service that exists, and publishes the Prometheus port it serves.
    /// </summary>
    public IEnumerable<string> Collector()
    {
        var endpoints = Compose.Services
            .Select(s => s.Environment.GetValueOrDefault("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .OfType<string>()
            .Select(e => Uri.TryCreate(e, UriKind.Absolute, out var u) ? u : null)
            .OfType<Uri>()
            .ToList();
        foreach (var host in endpoints.Select(u => u.Host).Distinct(StringComparer.Ordinal))
        {
            if (Compose[host] is not { } collector || collector.Scalar("image")?.Contains("opentelemetry-collector", StringComparison.Ordinal) != true)
                continue;
            var config = collector.Volumes.Select(v => v.Split(':')[0]).FirstOrDefault(v => v.EndsWith(".yaml", StringComparison.Ordinal));
            if (config is null || !File.Exists(Repo.PathOf(config)))
            {
                yield return $"{host}: no collector configuration (.yaml) is mounted";
                continue;
            }
            var text = File.ReadAllText(Repo.PathOf(config));
            foreach (var port in endpoints.Where(u => u.Host == host).Select(u => u.Port).Distinct())
            {
                if (!text.Contains($"0.0.0.0:{port}", StringComparison.Ordinal))
                    yield return $"{host}: {config} does not receive OTLP on port {port}, where the services export";
            }
            foreach (Match m in ExporterEndpoint().Matches(text))
            {
                if (Compose[m.Groups["host"].Value] is null)
                    yield return $"{host}: {config} exports to '{m.Groups["host"].Value}', which is not a service";
            }
            var prometheus = PrometheusEndpoint().Match(text);
            if (prometheus.Success && !collector.Ports.Any(p => p.EndsWith(":" + prometheus.Groups["port"].Value, StringComparison.Ordinal)))
                yield return $"{host}: the Prometheus port {prometheus.Groups["port"].Value} is not published";
        }
    }

    [GeneratedRegex(@"endpoint:\s*""(?<host>[a-z][a-z0-9-]*):\d+""")]
    private static partial Regex ExporterEndpoint();

    [GeneratedRegex(@"prometheus:\s*\n\s*endpoint:\s*""0\.0\.0\.0:(?<port>\d+)""")]
    private static partial Regex PrometheusEndpoint();

    private string? ProjectOf(ComposeService service)
    {
        if (service.Build is not { } build) return null;
        var path = Path.Combine(Repo.PathOf(build.Context), build.Dockerfile);
        if (!File.Exists(path)) return null;
        var published = Dockerfile.Parse(File.ReadAllText(path)).PublishedPath;
        return published is null ? null : SrcProject().Match(published) is { Success: true } m ? m.Groups["name"].Value : null;
    }

    private static int ListenPort(string urls) =>
        Uri.TryCreate(urls.Split(';')[0].Replace("+", "localhost", StringComparison.Ordinal).Replace("*", "localhost", StringComparison.Ordinal), UriKind.Absolute, out var uri)
            ? uri.Port
            : -1;

    private static Dictionary<string, string> ConnectionString(string text) =>
        text.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(p => p.Split('=', 2))
            .Where(p => p.Length == 2)
            .ToDictionary(p => p[0].ToLowerInvariant(), p => p[1], StringComparer.Ordinal);

    [GeneratedRegex(@"^src/(?<name>[A-Za-z0-9_.]+)$")]
    private static partial Regex SrcProject();

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,47}$")]
    private static partial Regex DeviceName();

    [GeneratedRegex(@"DevicePrefix\s*=\s*""(?<prefix>[^""]+)""")]
    private static partial Regex DevicePrefix();
}
