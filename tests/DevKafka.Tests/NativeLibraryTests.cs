using System.Globalization;
using Confluent.Kafka;
using TaggedMirror.KafkaNative;

namespace TaggedMirror.DevKafka.Tests;

/// <summary>
/// Everything that calls librdkafka runs on librdkafka.redist's library, whatever else is installed: on a
/// machine with Debian's librdkafka1 (2.0.2), Confluent.Kafka bound that one by itself and failed in Consume.
/// </summary>
public sealed class NativeLibraryTests
{
    [Fact]
    public async Task clients_and_the_in_process_mock_run_on_the_redist_library_of_the_client_version()
    {
        using var cluster = MockKafkaCluster.Start();
        var topic = KafkaClients.NewTopic("native");
        cluster.CreateTopic(topic, partitions: 1, replicationFactor: 3);
        using (var producer = KafkaClients.Producer(cluster.BootstrapServers))
        {
            await producer.ProduceAsync(topic, new Message<string, byte[]> { Key = "k", Value = [1] });
        }

        using (var consumer = KafkaClients.Consumer(cluster.BootstrapServers))
        {
            consumer.Assign(new TopicPartitionOffset(topic, 0, 0));
            Assert.NotNull(consumer.Consume(TimeSpan.FromSeconds(10)));
        }

        // Confluent.Kafka x.y calls librdkafka x.y; Debian's is 2.0.2.
        var client = typeof(Library).Assembly.GetName().Version!;
        var expected = string.Create(CultureInfo.InvariantCulture, $"{client.Major}.{client.Minor}.");
        Assert.StartsWith(expected, Library.VersionString, StringComparison.Ordinal);
        Assert.Equal(Library.VersionString, MockKafkaCluster.LibraryVersion);

        var loaded = Librdkafka.LoadedPath;
        Assert.NotNull(loaded);
        Assert.EndsWith("/centos8-librdkafka.so", loaded, StringComparison.Ordinal);
        Assert.Equal([Path.GetFullPath(loaded)], MappedLibrdkafka("/proc/self/maps"));
    }

    [Fact]
    public async Task the_devkafka_process_maps_only_the_redist_library()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        using var devkafka = await DevKafkaProcess.StartAsync("--brokers 1 --topics native:1", timeout.Token);
        var bootstrap = (await File.ReadAllTextAsync(devkafka.BootstrapFile, timeout.Token)).Trim();
        using (var producer = KafkaClients.Producer(bootstrap))
        {
            await producer.ProduceAsync("native", new Message<string, byte[]> { Key = "k", Value = [1] }, timeout.Token);
        }

        var mapped = MappedLibrdkafka($"/proc/{devkafka.Process.Id}/maps");
        var path = Assert.Single(mapped);
        Assert.Equal(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "centos8-librdkafka.so"), path);
    }

    // Every distinct file whose name contains "librdkafka" mapped into the process.
    private static string[] MappedLibrdkafka(string maps) =>
        [.. File.ReadLines(maps)
            .Select(line => line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries))
            .Where(fields => fields.Length == 6 && fields[5].Contains("librdkafka", StringComparison.Ordinal))
            .Select(fields => fields[5].Trim())
            .Distinct(StringComparer.Ordinal)];
}
