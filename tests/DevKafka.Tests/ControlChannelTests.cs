using Confluent.Kafka;

namespace TaggedMirror.DevKafka.Tests;

public sealed class ControlChannelTests
{
    [Fact]
    public async Task devkafka_process_serves_clients_takes_fault_commands_and_cleans_up_on_sigterm()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        var ct = timeout.Token;
        using var devkafka = await DevKafkaProcess.StartAsync("--brokers 3 --topics control:2", ct);
        var bootstrap = (await File.ReadAllTextAsync(devkafka.BootstrapFile, ct)).Trim();
        Assert.Equal(3, bootstrap.Split(',').Length);
        var port = await MockKafkaControlClient.ReadPortAsync(devkafka.BootstrapFile, ct);

        Assert.Equal("ok", await MockKafkaControlClient.SendAsync(port, "leader control 0 1", ct));
        using (var producer = KafkaClients.Producer(bootstrap, messageTimeoutMs: 2000))
        {
            var first = await producer.ProduceAsync(new TopicPartition("control", 0), Message("first"), ct);
            Assert.Equal(0, first.Offset.Value);

            Assert.Equal("ok", await MockKafkaControlClient.SendAsync(port, "down 1", ct));
            var down = await Assert.ThrowsAsync<ProduceException<string, byte[]>>(
                () => producer.ProduceAsync(new TopicPartition("control", 0), Message("lost"), ct));
            Assert.Equal(ErrorCode.Local_MsgTimedOut, down.Error.Code);

            Assert.Equal("ok", await MockKafkaControlClient.SendAsync(port, "up 1", ct));
            var second = await producer.ProduceAsync(new TopicPartition("control", 0), Message("second"), ct);
            Assert.Equal(1, second.Offset.Value);
        }

        using (var consumer = KafkaClients.Consumer(bootstrap))
        {
            consumer.Assign(new TopicPartitionOffset("control", 0, 0));
            var keys = new List<string>();
            while (keys.Count < 2)
            {
                ct.ThrowIfCancellationRequested();
                var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (result is not null)
                {
                    keys.Add(result.Message.Key);
                }
            }

            Assert.Equal(["first", "second"], keys);

            Assert.Equal("ok", await MockKafkaControlClient.SendAsync(port, "delete-records control 0 1", ct));
            var watermarks = consumer.QueryWatermarkOffsets(new TopicPartition("control", 0), TimeSpan.FromSeconds(10));
            Assert.Equal((1, 2), (watermarks.Low.Value, watermarks.High.Value));
        }

        Assert.StartsWith("error ", await MockKafkaControlClient.SendAsync(port, "delete-records control 0 3", ct), StringComparison.Ordinal);

        Assert.StartsWith("error ", await MockKafkaControlClient.SendAsync(port, "explode now", ct), StringComparison.Ordinal);
        Assert.StartsWith("error ", await MockKafkaControlClient.SendAsync(port, "down 7", ct), StringComparison.Ordinal);
        Assert.StartsWith("error ", await MockKafkaControlClient.SendAsync(port, "topic control 2", ct), StringComparison.Ordinal);
        Assert.Equal("ok", await MockKafkaControlClient.SendAsync(port, "rtt 2 1", ct));
        Assert.Equal("ok", await MockKafkaControlClient.SendAsync(port, "topic other 3", ct));
        Assert.Equal("ok", await MockKafkaControlClient.SendAsync(port, "ping", ct));

        devkafka.SendSignal("TERM");
        await devkafka.Process.WaitForExitAsync(ct);
        Assert.Equal(0, devkafka.Process.ExitCode);
        Assert.False(File.Exists(devkafka.BootstrapFile));
        Assert.False(File.Exists(MockKafkaControlClient.ControlFilePath(devkafka.BootstrapFile)));
    }

    private static Message<string, byte[]> Message(string key) => new() { Key = key, Value = [1, 2, 3] };
}
