using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using TaggedMirror.Contracts.Api;
using TaggedMirror.IntakeClient;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Who may publish a write to the Kafka intake (issue #12): a request carries an API key that must be live, may
/// write the volume, and holds the producer id it names. Requests from no one are quarantined and go unanswered; no
/// other key can answer, spoil or replay a producer's request ids; a key that may not write a volume is told so.
/// </summary>
public sealed class IntakeAccessTests
{
    private const int BlockSize = 4096;

    [Fact]
    public async Task requests_are_taken_from_keys_only_and_a_producer_id_belongs_to_the_key_that_first_used_it()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("a", BlockSize, 16);
        await cluster.CreateVolumeAsync("b", BlockSize, 16);
        var writer = await cluster.CreateKeyAsync(new CreateKeyRequest(AccessRoles.Producer, ["a"]));
        var reader = await cluster.CreateKeyAsync(new CreateKeyRequest(AccessRoles.Producer, ["a"], ReadOnly: true));
        var other = await cluster.CreateKeyAsync(new CreateKeyRequest(AccessRoles.Producer, ["b"]));
        var model = new VolumeModel(BlockSize, 16);
        IntakeProducer Producer(string id, string key) => IntakeProducer.Create(new IntakeProducerOptions
        {
            BootstrapServers = cluster.Kafka.BootstrapServers,
            ProducerId = id,
            Key = key,
            Timeout = TimeSpan.FromSeconds(60),
        }, TimeSpan.FromSeconds(60));
        async Task QuarantinedAsync(string producer, string request, string why)
        {
            string? reason = null;
            await Eventually.TrueAsync(async () => (reason = await QuarantineReasonAsync(cluster, producer, request)) is not null,
                TimeSpan.FromSeconds(30), () => $"{producer}/{request} was not quarantined\n{cluster.Logs()}");
            Assert.Contains(why, reason, StringComparison.Ordinal);
        }

        // The writer's key writes its volume, and the write is recorded as the key's.
        using var pa = Producer("pa", writer.Key);
        var first = await pa.PublishAsync("a", 0, VolumeModel.Data(1, 2, BlockSize), "r1");
        Assert.True(first.Ok, first.Refusal);
        model.Record(new WriteResult(first.Tag!, 0, 2, first.MirrorsHolding, first.Mirrors, false), 1);

        // No key, a made-up key, a wrong secret for a real key id: quarantined, unanswered, nothing written.
        using (var none = Producer("pn", "placeholder"))
        {
            await none.PublishRawAsync(Encoding.UTF8.GetBytes("a"), VolumeModel.Data(2, 1, BlockSize), new Confluent.Kafka.Headers
            {
                { Contracts.Intake.IntakeHeaders.Request, Contracts.Intake.IntakeCodec.EncodeRequest("pn", "r1", 4, VolumeModel.Data(2, 1, BlockSize)) },
            });
        }
        await QuarantinedAsync("pn", "r1", "carries no API key");
        using (var forged = Producer("pf", "tm_000000000000_" + new string('x', 43)))
            await forged.PublishOnlyAsync("a", 4, VolumeModel.Data(3, 1, BlockSize), "r1");
        await QuarantinedAsync("pf", "r1", "unknown, wrong or revoked");
        using (var wrong = Producer("pw", writer.Key[..^4] + "AAAA"))
            await wrong.PublishOnlyAsync("a", 4, VolumeModel.Data(4, 1, BlockSize), "r1");
        await QuarantinedAsync("pw", "r1", "unknown, wrong or revoked");

        // Another key under the writer's producer id, even for its own volume: quarantined, and nothing is answered or
        // recorded under pa — the writer's own request with that id afterwards is written, not answered with it.
        using (var spoiler = Producer("pa", other.Key))
            await spoiler.PublishOnlyAsync("b", 0, VolumeModel.Data(5, 1, BlockSize), "r2");
        await QuarantinedAsync("pa", "r2", "held by another key");
        var second = await pa.PublishAsync("a", 2, VolumeModel.Data(6, 1, BlockSize), "r2");
        Assert.True(second.Ok, second.Refusal);
        model.Record(new WriteResult(second.Tag!, 2, 1, second.MirrorsHolding, second.Mirrors, false), 6);
        Assert.Equal(["r1", "r2"], pa.Received.Select(o => o.RequestId));

        // Keys that may not write: a read-only key, another volume's key (told the same for a volume that does not
        // exist, so it learns nothing of which do). Refused to their producer, unrecorded.
        using (var ro = Producer("pr", reader.Key))
        {
            var o = await ro.PublishAsync("a", 5, VolumeModel.Data(7, 1, BlockSize), "r1");
            Assert.True(!o.Ok && o.Refusal == $"key {reader.Info.Id} may not write volume a", o.Refusal);
        }
        using (var ob = Producer("pb", other.Key))
        {
            var o = await ob.PublishAsync("a", 5, VolumeModel.Data(8, 1, BlockSize), "r1");
            Assert.True(!o.Ok && o.Refusal == $"key {other.Info.Id} may not write volume a", o.Refusal);
            o = await ob.PublishAsync("no-such", 0, VolumeModel.Data(8, 1, BlockSize), "r2");
            Assert.True(!o.Ok && o.Refusal == $"key {other.Info.Id} may not write volume no-such", o.Refusal);
        }
        Assert.Equal(0, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.intake_requests WHERE producer_id IN ('pn', 'pf', 'pw', 'pr', 'pb')"));

        // The writer's key rotated: revoked, its requests go unanswered; the new key takes the producer id over, is
        // answered a request id seen before with its first outcome (not written again), and writes new ones.
        await cluster.RevokeKeyAsync(writer.Info.Id);
        await Task.Delay(ApiKeyLookupCache);
        await pa.PublishOnlyAsync("a", 6, VolumeModel.Data(9, 1, BlockSize), "r3");
        await QuarantinedAsync("pa", "r3", "unknown, wrong or revoked");
        var rotated = await cluster.CreateKeyAsync(new CreateKeyRequest(AccessRoles.Producer, ["a"]));
        using var pa2 = Producer("pa", rotated.Key);
        Assert.Equal(second, await pa2.PublishAsync("a", 2, VolumeModel.Data(6, 1, BlockSize), "r2"));
        var third = await pa2.PublishAsync("a", 8, VolumeModel.Data(10, 2, BlockSize), "r4");
        Assert.True(third.Ok, third.Refusal);
        model.Record(new WriteResult(third.Tag!, 8, 2, third.MirrorsHolding, third.Mirrors, false), 10);
        Assert.Equal("key:" + rotated.Info.Id, (await WriterOfAsync(cluster, "a", 9))?.Principal);
        Assert.Equal("key:" + writer.Info.Id, (await WriterOfAsync(cluster, "a", 0))?.Principal);

        // Exactly the accepted writes are on both mirrors; b was never written.
        await cluster.WaitConvergedAsync("a");
        Mirrors.AssertObjectFilesEqual(cluster, "a", model.Expected());
        await Mirrors.AssertReadsEqualAsync(cluster, "a", model.Expected(), BlockSize);
        Assert.All(await cluster.ReadAsync("b", 0, 16), b => Assert.Equal(0, b));
    }

    private static readonly TimeSpan ApiKeyLookupCache = TimeSpan.FromSeconds(1.5);

    private static async Task<string?> QuarantineReasonAsync(TestCluster cluster, string producer, string request)
    {
        await using var cmd = cluster.DataSource.CreateCommand(
            $"SELECT reason FROM {cluster.Schema}.intake_quarantine WHERE producer_id = @p AND request_id = @q");
        cmd.Parameters.AddWithValue("p", producer);
        cmd.Parameters.AddWithValue("q", request);
        return await cmd.ExecuteScalarAsync() as string;
    }

    private static async Task<BlockWrite?> WriterOfAsync(TestCluster cluster, string volume, long block)
    {
        await Eventually.TrueAsync(async () => (await GetWriterAsync(cluster, volume, block))?.AppliedBy.Length == 2,
            TimeSpan.FromSeconds(30), () => $"block {block} of {volume} never recorded on both mirrors");
        return await GetWriterAsync(cluster, volume, block);
    }

    private static async Task<BlockWrite?> GetWriterAsync(TestCluster cluster, string volume, long block) => (await cluster.WritersAsync(volume, block)).LastWrite;
}
