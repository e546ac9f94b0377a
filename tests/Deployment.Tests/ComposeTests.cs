namespace TaggedMirror.Deployment.Tests;

/// <summary>The real docker-compose.yml and deploy/ against the code, one check per fact.</summary>
public sealed class ComposeTests
{
    private static readonly DeploymentChecks Checks = new(ComposeFile.Load());

    [Fact]
    public void Compose_file_parses_with_the_strict_subset_reader() =>
        Assert.IsType<YamlMapping>(Yaml.Parse(Repo.Read("docker-compose.yml")));

    [Fact]
    public void Every_service_the_code_needs_exists() => Assert.Empty(Checks.ServicesExist());

    [Fact]
    public void Every_dockerfile_exists_and_publishes_a_project_under_src() => Assert.Empty(Checks.Dockerfiles());

    [Fact]
    public void Environment_names_are_properties_of_the_options_classes() => Assert.Empty(Checks.EnvironmentNames());

    [Fact]
    public void Environment_values_parse_and_telemetry_settings_agree() => Assert.Empty(Checks.EnvironmentValues());

    [Fact]
    public void Hosts_in_connection_strings_and_urls_are_services() => Assert.Empty(Checks.Hosts());

    [Fact]
    public void Each_agent_is_named_after_its_device_and_registers_its_own_url() => Assert.Empty(Checks.AgentIdentity());

    [Fact]
    public void Published_host_ports_are_distinct() => Assert.Empty(Checks.PublishedPorts());

    [Fact]
    public void Each_agent_keeps_its_data_in_its_own_named_volume() => Assert.Empty(Checks.NamedVolumes());

    [Fact]
    public void Services_wait_for_healthy_dependencies() => Assert.Empty(Checks.DependsOn());

    [Fact]
    public void Kafka_init_creates_every_agents_topic_with_unlimited_retention() => Assert.Empty(Checks.KafkaInit());

    [Fact]
    public void The_options_scan_finds_the_sections_the_apps_bind()
    {
        var sections = OptionsSource.InProjects(["Hosting", "Controller", "DeviceAgent"]).ToDictionary(o => o.Section);
        Assert.Contains("Postgres", sections["TaggedMirror"].PropertyTypes.Keys);
        Assert.Equal("int", sections["Controller"].PropertyTypes["Id"]);
        Assert.Contains("PublicUrl", sections["Agent"].PropertyTypes.Keys);
    }

    [Fact]
    public void The_agent_and_controller_are_built_from_their_projects()
    {
        Assert.Equal(["controller"], Checks.Controllers.Select(s => s.Name));
        Assert.Equal(["agent-d0", "agent-d1"], Checks.Agents.Select(s => s.Name));
    }
}
