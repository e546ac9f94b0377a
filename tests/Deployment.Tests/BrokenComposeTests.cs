namespace TaggedMirror.Deployment.Tests;

/// <summary>The checks catch mistakes: each case breaks one thing in a copy of the real compose file.</summary>
public sealed class BrokenComposeTests
{
    private static readonly string Original = Repo.Read("docker-compose.yml");

    [Fact]
    public void The_real_file_has_no_problems() => Assert.Empty(DeploymentChecks.Run(Original));

    [Theory]
    [InlineData("Agent__DeviceId: \"d0\"", "Agent__DeviceID: \"d0\"", "has no property 'DeviceID'")]
    [InlineData("TaggedMirror__RabbitMqHost: \"rabbitmq\"", "TaggedMirror__RabbitHost: \"rabbitmq\"", "has no property 'RabbitHost'")]
    [InlineData("Controller__Id: \"1\"", "Controler__Id: \"1\"", "no options section 'Controler'")]
    [InlineData("Controller__Id: \"1\"", "Controller__Id: \"one\"", "does not parse as int")]
    [InlineData("Agent__DeviceId: \"d1\"", "Agent__DeviceId: \"d2\"", "does not match the service name")]
    [InlineData("Agent__PublicUrl: \"http://agent-d1:8080\"", "Agent__PublicUrl: \"http://agent-d0:8080\"", "is not this agent's service name")]
    [InlineData("Host=postgres;Username", "Host=postgress;Username", "host 'postgress' is not a service")]
    [InlineData("TaggedMirror__Kafka: \"kafka:9092\"", "TaggedMirror__Kafka: \"kafka:29092\"", "is not an advertised listener")]
    [InlineData("OTEL_EXPORTER_OTLP_ENDPOINT: \"http://otel-collector:4318\"", "OTEL_EXPORTER_OTLP_ENDPOINT: \"http://otel-colector:4318\"", "host 'otel-colector' is not a service")]
    [InlineData("./deploy/otel-collector.yaml:/etc/otelcol-contrib/config.yaml:ro", "./deploy/otelcol.yaml:/etc/otelcol-contrib/config.yaml:ro", "no collector configuration")]
    [InlineData("      - \"8889:8889\"\n", "", "the Prometheus port 8889 is not published")]
    [InlineData("  otel-collector:\n    image", "  collector:\n    image", "service 'otel-collector' is missing")]
    [InlineData("\"5102:8080\"", "\"5101:8080\"", "host port 5101 is also published")]
    [InlineData("dockerfile: deploy/agent.Dockerfile", "dockerfile: deploy/agents.Dockerfile", "does not exist")]
    [InlineData("agent-d1-data:/data", "agent-d0-data:/data", "is shared with agent-d0")]
    [InlineData("TM_DEVICES: \"d0 d1\"", "TM_DEVICES: \"d0\"", "does not list exactly the agents' device ids")]
    [InlineData("  agent-d1:\n", "  agent-d2:\n", "service 'agent-d1' is missing")]
    [InlineData("      kafka-init:\n        condition: service_completed_successfully\n", "", "should depend on kafka-init")]
    [InlineData("      test: [\"CMD\", \"pg_isready\", \"-U\", \"tm\", \"-d\", \"tm\"]\n", "      test: [\"CMD\", \"true\"]\n", "healthcheck should run pg_isready")]
    [InlineData("TaggedMirror__RabbitMqPassword: \"tm\"", "TaggedMirror__RabbitMqPassword: \"guest\"", "does not match rabbitmq RABBITMQ_DEFAULT_PASS")]
    [InlineData("      Agent__DataDirectory: \"/data\"\n", "      Agent__DataDirectory: \"/var/data\"\n", "no volume is mounted at Agent__DataDirectory")]
    [InlineData("  postgres:\n    image", "  postgres:\n\timage", "tab")]
    public void A_broken_copy_is_reported(string find, string replace, string expected)
    {
        Assert.Contains(find, Original, StringComparison.Ordinal);
        var problems = DeploymentChecks.Run(Original.Replace(find, replace, StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains(expected, StringComparison.Ordinal));
    }
}
