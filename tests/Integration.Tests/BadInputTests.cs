using System.Net;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>Bad input gets a clear error and changes nothing; bad transactions off the log are quarantined.</summary>
public sealed class BadInputTests
{
    private const int BlockSize = 4096;

    [Fact]
    public async Task refused_writes_answer_4xx_with_a_reason_and_change_nothing()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("bad", BlockSize, 16);
        var before = (await cluster.ControllerInfoAsync()).GetProperty("tagsIssued").GetInt64();

        await AssertRefusedAsync(await cluster.PutBlocksAsync("bad", 15, new byte[2 * BlockSize]), HttpStatusCode.BadRequest, "outside volume bad");
        await AssertRefusedAsync(await cluster.PutBlocksAsync("bad", -1, new byte[BlockSize]), HttpStatusCode.BadRequest, "outside volume bad");
        await AssertRefusedAsync(await cluster.PutBlocksAsync("bad", 0, new byte[BlockSize + 1]), HttpStatusCode.BadRequest, "not a whole number");
        await AssertRefusedAsync(await cluster.PutBlocksAsync("bad", 0, []), HttpStatusCode.BadRequest, "empty write");
        await AssertRefusedAsync(await cluster.PutBlocksAsync("nosuch", 0, new byte[BlockSize]), HttpStatusCode.NotFound, "no volume named 'nosuch'");
        await AssertRefusedAsync(await cluster.PutBlocksAsync("bad", 0, new byte[BlockSize], wait: "sometime"), HttpStatusCode.BadRequest, "wait must be");
        await AssertRefusedAsync(await cluster.AppendAsync("bad", new byte[100]), HttpStatusCode.BadRequest, "not a whole number");
        await AssertRefusedAsync(await cluster.PutBlocksAsync("bad", 0, new byte[1024 * 1024]), HttpStatusCode.RequestEntityTooLarge, "more than");
        using (var r = await cluster.Http.GetAsync(new Uri($"{cluster.Controller.Url}/volumes/bad/blocks/16?count=1")))
            await AssertRefusedAsync(r, HttpStatusCode.BadRequest, "outside volume bad");
        using (var r = await cluster.Http.PostAsync(new Uri(cluster.Controller.Url + "/volumes"),
                   new StringContent("""{"name":"Bad Name","blockSize":4096,"blocks":1,"mirrors":["d0","d1"]}""", Encoding.UTF8, "application/json")))
        {
            await AssertRefusedAsync(r, HttpStatusCode.BadRequest, "not valid");
        }

        using (var r = await cluster.Http.PostAsync(new Uri(cluster.Controller.Url + "/volumes"),
                   new StringContent("""{"name":"odd","blockSize":3000,"blocks":1,"mirrors":["d0","d1"]}""", Encoding.UTF8, "application/json")))
        {
            await AssertRefusedAsync(r, HttpStatusCode.BadRequest, "power of two");
        }

        using (var r = await cluster.Http.PostAsync(new Uri(cluster.Controller.Url + "/volumes"),
                   new StringContent("""{"name":"bad","blockSize":4096,"blocks":1,"mirrors":["d0","d1"]}""", Encoding.UTF8, "application/json")))
        {
            await AssertRefusedAsync(r, HttpStatusCode.Conflict, "already exists");
        }

        Assert.Equal(before, (await cluster.ControllerInfoAsync()).GetProperty("tagsIssued").GetInt64());
        var status = await cluster.VolumeStatusAsync("bad");
        Assert.Equal(0, status.GetProperty("writesAccepted").GetInt64());
        Assert.Equal(0, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.mt_events WHERE type = 'tag_recorded'"));
    }

    [Fact]
    public async Task corrupt_transactions_on_a_device_topic_are_dead_lettered_and_the_agent_keeps_consuming()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("dlq", BlockSize, 16);
        await cluster.WriteAsync("dlq", 0, VolumeModel.Data(1, 1, BlockSize), wait: "applied");

        // As from the volume's owner (its owner epoch), so that only what is wrong with each is wrong with it.
        var ownerEpoch = await cluster.ScalarAsync("SELECT owner_epoch FROM {schema}.volume_leases WHERE volume = 'dlq'");
        using (var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = cluster.Kafka.BootstrapServers }).Build())
        {
            var topic = Topics.Device("d0");
            var obj = Encoding.UTF8.GetBytes(Names.ObjectId("dlq", "d0"));
            var data = VolumeModel.Data(2, 1, BlockSize);
            var good = new TransactionHeader(TransactionKind.Write, new Tag(99, 1, 1), 3, 1, BlockSize, 16, OwnerEpoch: ownerEpoch);

            // 1. no TaggedMirror headers at all
            await producer.ProduceAsync(topic, new Message<byte[]?, byte[]?> { Value = data });
            // 2. a flipped data bit under a valid header: CRC mismatch
            var h = new byte[TransactionHeader.Size];
            TransactionCodec.WriteHeader(h, good, obj, default, data);
            var flipped = (byte[])data.Clone();
            flipped[100] ^= 1;
            await producer.ProduceAsync(topic, Message(h, obj, flipped));
            // 3. an unknown format version
            var v9 = (byte[])h.Clone();
            v9[0] = 9;
            await producer.ProduceAsync(topic, Message(v9, obj, data));
            // 4. a well-formed write outside the object
            var outside = new byte[TransactionHeader.Size];
            TransactionCodec.WriteHeader(outside, good with { FirstBlock = 16 }, obj, default, data);
            await producer.ProduceAsync(topic, Message(outside, obj, data));
        }

        // The agent goes on: a later write is applied and read back from d0.
        var after = VolumeModel.Data(3, 2, BlockSize);
        var answer = await cluster.WriteAsync("dlq", 5, after, wait: "applied");
        Assert.True(answer.Applied);
        Assert.Equal(after, await cluster.ReadAsync("dlq", 5, 2));
        Assert.Equal(4, (await cluster.AgentStatusAsync("d0")).GetProperty("deadLettered").GetInt64());
        // Nothing of the refused transactions reached the block (3 is still zero on both mirrors).
        Assert.Equal(new byte[BlockSize], await cluster.ReadAsync("dlq", 3, 1));

        var reasons = DeviceTopic.DeadLetterReasons(cluster, "d0", 4);
        Assert.Contains(reasons, r => r.Contains("missing tm-h header", StringComparison.Ordinal));
        Assert.Contains(reasons, r => r.Contains("CRC32C mismatch", StringComparison.Ordinal));
        Assert.Contains(reasons, r => r.Contains("unknown transaction format version 9", StringComparison.Ordinal));
        Assert.Contains(reasons, r => r.Contains("outside dlq.d0", StringComparison.Ordinal));
    }

    private static Message<byte[]?, byte[]?> Message(byte[] header, byte[] obj, byte[] data) => new()
    {
        Value = data,
        Headers = new Headers { { HeaderNames.Header, header }, { HeaderNames.Object, obj } },
    };

    private static async Task AssertRefusedAsync(HttpResponseMessage response, HttpStatusCode status, string reasonContains)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
            var detail = JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString();
            Assert.Contains(reasonContains, detail, StringComparison.Ordinal);
        }
    }
}
