using TaggedMirror.Contracts;

namespace TaggedMirror.Hosting;

/// <summary>
/// Settings every deployable shares, bound from the <c>TaggedMirror</c> configuration section
/// (environment: <c>TaggedMirror__Postgres</c>, <c>TaggedMirror__Kafka</c>, …).
/// </summary>
public sealed class TaggedMirrorOptions
{
    public const string Section = "TaggedMirror";

    /// <summary>Names this installation on the bus, so two clusters on one RabbitMQ never see each other's messages.</summary>
    public string Cluster { get; set; } = "dev";

    /// <summary>Npgsql connection string. Never logged.</summary>
    public string Postgres { get; set; } = "Host=127.0.0.1;Username=tm;Password=tm;Database=tm";

    /// <summary>PostgreSQL schema holding the event store and the cluster tables.</summary>
    public string Schema { get; set; } = "tm";

    /// <summary>Kafka bootstrap servers. When empty, read from <see cref="KafkaBootstrapFile"/> (the development broker writes it).</summary>
    public string Kafka { get; set; } = "";

    /// <summary>File the development broker (DevKafka) writes its bootstrap servers to.</summary>
    public string KafkaBootstrapFile { get; set; } = ".run/kafka.bootstrap";

    /// <summary><c>RabbitMq</c> between processes, or <c>InMemory</c> when everything runs in one process.</summary>
    public string BusTransport { get; set; } = "RabbitMq";

    public string RabbitMqHost { get; set; } = "127.0.0.1";

    public ushort RabbitMqPort { get; set; } = 5672;

    public string RabbitMqVirtualHost { get; set; } = "/";

    public string RabbitMqUser { get; set; } = "guest";

    /// <summary>Never logged.</summary>
    public string RabbitMqPassword { get; set; } = "guest";

    /// <summary>
    /// Refuses, at start, names that would break later and less clearly: <see cref="Schema"/> is written into SQL
    /// as it is (<see cref="Names.IsValidSchema"/>), and <see cref="Cluster"/> into queue and exchange names
    /// (letters, digits, <c>-</c>, <c>_</c>, <c>.</c>, at most 64).
    /// </summary>
    public void Validate()
    {
        if (!Names.IsValidSchema(Schema))
            throw new ArgumentException($"TaggedMirror:Schema '{Schema}' is not {Names.SchemaRule}");
        if (Cluster.Length is 0 or > 64 || !Cluster.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            throw new ArgumentException($"TaggedMirror:Cluster '{Cluster}' must be 1 to 64 letters, digits, '-', '_' or '.' (it names the bus's queues)");
    }

    /// <summary>The bootstrap servers to use, resolving the development broker's file when none are configured.</summary>
    public string ResolveKafkaBootstrap()
    {
        if (!string.IsNullOrWhiteSpace(Kafka)) return Kafka;
        if (File.Exists(KafkaBootstrapFile))
        {
            var text = File.ReadAllText(KafkaBootstrapFile).Trim();
            if (text.Length > 0) return text;
        }
        throw new InvalidOperationException(
            $"No Kafka bootstrap servers: set TaggedMirror__Kafka, or start the development broker (ops/devkafka-start.sh) which writes {Path.GetFullPath(KafkaBootstrapFile)}.");
    }
}
