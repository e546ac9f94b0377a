using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Issue #7, items 6 and 12: a transaction the device cannot apply (its range overflows, its object id is not
/// a file name, the disk is full, the dead-letter topic is down) never stalls the device or goes unrecorded.
/// </summary>
public sealed class PoisonTransactionTests
{
    private const int BlockSize = 4096;

    [Fact]
    public async Task a_copy_whose_range_overflows_is_quarantined_and_the_controller_settles_its_write_without_that_mirror()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__RetireMatchedAfter"] = "00:00:01" });
        const long blocks = 64;
        await cluster.CreateVolumeAsync("ov", BlockSize, blocks);
        var model = new VolumeModel(BlockSize, blocks);
        model.Record(await cluster.WriteAsync("ov", 0, VolumeModel.Data(1, 2, BlockSize), wait: "applied"), 1);

        // d0 is stopped, so the next write waits for it in the controller.
        await cluster.Agent("d0").StopAsync();
        var answer = await cluster.WriteAsync("ov", 5, VolumeModel.Data(2, 1, BlockSize));
        model.Record(answer, 2);
        Assert.Equal(2, answer.MirrorsHolding);
        // That copy goes bad in d0's log: d0 resumes past it and finds, with the same tag, a copy whose byte offset
        // overflows 64 bits (first block * block size), as a corrupted copy with a correct CRC would.
        var resumeAt = await cluster.AgentNextOffsetAsync("d0");
        var copyAt = DeviceTopic.OffsetOfCopy(cluster, "d0", answer.Tag, resumeAt);
        Assert.True(Tag.TryParse(answer.Tag, out var tag));
        var poison = new TransactionHeader(TransactionKind.Append, tag, long.MaxValue / BlockSize + 1, 1, BlockSize, blocks);
        var poisonAt = await DeviceTopic.ProduceAsync(cluster, "d0", poison, Names.ObjectId("ov", "d0"), VolumeModel.Data(3, 1, BlockSize));
        await cluster.ScalarAsync("UPDATE {schema}.device_offsets SET next_offset = @o WHERE device_id = 'd0' AND partition = 0 RETURNING 1", ("o", copyAt + 1));
        await cluster.StartAgentAsync("d0");

        await Eventually.TrueAsync(async () => (await cluster.AgentStatusAsync("d0")).GetProperty("deadLettered").GetInt64() == 1,
            TimeSpan.FromSeconds(30), () => $"d0 did not quarantine the overflowing copy\n{cluster.Logs()}");
        var reason = Assert.Single(DeviceTopic.DeadLetterReasons(cluster, "d0", 1));
        Assert.Contains("overflow", reason, StringComparison.Ordinal);
        // d0 went on past it ...
        await Eventually.TrueAsync(async () => await cluster.AgentNextOffsetAsync("d0") > poisonAt,
            TimeSpan.FromSeconds(30), () => $"d0 stopped at the poisoned copy\n{cluster.Logs()}");
        // ... and the controller settled the write without d0 (it would wait for d0 forever otherwise), degraded
        // the mirror, and reconciliation copied the write to d0.
        await Eventually.TrueAsync(async () => await cluster.ScalarAsync("""
                SELECT count(*) FROM {schema}.mt_events WHERE stream_id = 'volume-ov' AND type = 'mirror_state_changed'
                  AND data->>'deviceId' = 'd0' AND data->>'state' = 'Degraded' AND data->>'reason' LIKE '%dead-letter%'
                """) >= 1,
            TimeSpan.FromSeconds(30), () => "the controller did not mark d0's copy failed\n" + cluster.Logs());
        await cluster.WaitConvergedAsync("ov");
        Assert.Contains(await cluster.ResyncsAsync("ov"), r => r.CompletedTags.Contains(answer.Tag) && r.Target == "d0");

        var expected = model.Expected();
        Mirrors.AssertObjectFilesEqual(cluster, "ov", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "ov", expected, BlockSize);
        // Nothing of the refused copy reached d0: its object did not grow past its capacity.
        Assert.InRange(cluster.ObjectFile("d0", "ov").Length, 1, blocks * BlockSize);
        Assert.Equal(0, await cluster.ScalarAsync("SELECT coalesce(sum(ext_blocks), 0) FROM {schema}.device_objects WHERE object_id LIKE 'ov.%'"));
    }

    [Fact]
    public async Task object_ids_that_are_not_plain_file_names_and_overflowing_ranges_are_quarantined_one_by_one_while_the_device_goes_on()
    {
        await using var cluster = await TestCluster.StartAsync();
        const long blocks = 16;
        await cluster.CreateVolumeAsync("pv", BlockSize, blocks);
        var model = new VolumeModel(BlockSize, blocks);
        model.Record(await cluster.WriteAsync("pv", 0, VolumeModel.Data(1, 1, BlockSize), wait: "applied"), 1);
        var applied = (await cluster.AgentStatusAsync("d0")).GetProperty("appliedTransactions").GetInt64();

        var data = VolumeModel.Data(9, 1, BlockSize);
        var write = new TransactionHeader(TransactionKind.Write, new Tag(99, 1, 1), 3, 1, BlockSize, blocks);
        // A file below the data directory, a NUL in a path, a way out of it: none may ever be opened.
        await DeviceTopic.ProduceAsync(cluster, "d0", write, "pz.d0/sub", data);
        await DeviceTopic.ProduceAsync(cluster, "d0", write with { Tag = new Tag(99, 1, 2) }, "pz.d0\0x", data);
        await DeviceTopic.ProduceAsync(cluster, "d0", write with { Tag = new Tag(99, 1, 3) }, "pz.d0/../../../escaped", data);
        // Ranges whose byte offsets overflow: an append far past the end, and a repair whose end overflows.
        await DeviceTopic.ProduceAsync(cluster, "d0",
            write with { Kind = TransactionKind.Append, Tag = new Tag(99, 1, 4), FirstBlock = long.MaxValue / BlockSize + 1 }, Names.ObjectId("pv", "d0"), data);
        await DeviceTopic.ProduceAsync(cluster, "d0",
            write with { Kind = TransactionKind.Repair, Tag = new Tag(99, 1, 5), FirstBlock = long.MaxValue / BlockSize }, Names.ObjectId("pv", "d0"), data);

        // The device goes on: a later write is applied on both mirrors.
        var after = VolumeModel.Data(2, 2, BlockSize);
        model.Record(await cluster.WriteAsync("pv", 5, after), 2);
        await Eventually.TrueAsync(async () => (await cluster.AgentStatusAsync("d0")).GetProperty("appliedTransactions").GetInt64() > applied,
            TimeSpan.FromSeconds(30), () => $"d0 stopped at a poisoned transaction\n{cluster.Logs()}");
        await cluster.WaitTagTablesEmptyAsync();
        Assert.Equal(5, (await cluster.AgentStatusAsync("d0")).GetProperty("deadLettered").GetInt64());

        var reasons = DeviceTopic.DeadLetterReasons(cluster, "d0", 5);
        Assert.Equal(5, reasons.Count);
        Assert.Equal(3, reasons.Count(r => r.Contains("object id", StringComparison.Ordinal)));
        Assert.Equal(2, reasons.Count(r => r.Contains("overflow", StringComparison.Ordinal)));
        // Nothing was created for them: the data directory holds the volume's object and its checksums and nothing
        // else, and no object was recorded for them.
        Assert.Equal(["pv.d0.obj", "pv.d0.sum"], System.IO.Directory.EnumerateFileSystemEntries(cluster.DataDirectory("d0")).Select(Path.GetFileName).Order());
        Assert.Empty(System.IO.Directory.EnumerateFileSystemEntries(cluster.Directory, "escaped*", SearchOption.AllDirectories));
        Assert.Equal(0, await cluster.ScalarAsync("SELECT count(*) FROM {schema}.device_objects WHERE object_id NOT LIKE 'pv.%'"));
        Assert.InRange(cluster.ObjectFile("d0", "pv").Length, 1, blocks * BlockSize);
        var expected = model.Expected();
        Mirrors.AssertObjectFilesEqual(cluster, "pv", expected);
        await Mirrors.AssertReadsEqualAsync(cluster, "pv", expected, BlockSize);
    }

    [Fact]
    public async Task a_full_disk_stops_the_device_without_skipping_anything_degrades_the_mirror_and_the_device_resumes_when_space_returns()
    {
        var mountPoint = Path.Combine(Path.GetTempPath(), "tm-it-tmpfs-" + Guid.NewGuid().ToString("N")[..8]);
        // 48 pages: the first writes fit, then the kernel answers ENOSPC.
        await using var disk = await TmpfsMount.CreateAsync(mountPoint, 48 * 4096);
        await using var cluster = await TestCluster.StartAsync(
            controllerSettings: new()
            {
                // Only the device's own report may degrade the mirror here, not the lag bound.
                ["Controller__MaxLagBytes"] = (64 * 1024 * 1024).ToString(CultureInfo.InvariantCulture),
                ["Controller__LagTimeout"] = "00:05:00",
            },
            processEnvironment: p => p == "agent-d0" ? new Dictionary<string, string> { ["Agent__DataDirectory"] = mountPoint } : []);
        const long blocks = 1024;
        await cluster.CreateVolumeAsync("full", BlockSize, blocks);
        var model = new VolumeModel(BlockSize, blocks);
        var seedOf = new Dictionary<string, int>(StringComparer.Ordinal);
        // Writes that never overlap, so each recorded entry can be checked against the bytes on the disk.
        for (var i = 1; i <= 60; i++)
        {
            // The first few are applied before the rest come (they fit): otherwise one batch of all of them can
            // hit the full disk at once, and there is nothing recorded to check against the disk.
            var answer = await cluster.WriteAsync("full", (i - 1) * 2, VolumeModel.Data(i, 2, BlockSize), wait: i <= 3 ? "applied" : null);
            model.Record(answer, i);
            seedOf[answer.Tag] = i;
        }

        // The device says why it stopped, and the controller took the mirror out of reads and writes. The reason is
        // read from the same status that says faulted: between two attempts the device may record a shorter batch
        // that fits (see below), and is running until the next attempt fails again.
        JsonElement faulted = default;
        await Eventually.TrueAsync(async () =>
            {
                var s = await cluster.AgentStatusAsync("d0");
                if (s.GetProperty("state").GetString() != "faulted") return false;
                faulted = s;
                return true;
            },
            TimeSpan.FromSeconds(30), () => $"d0 does not report the full disk: {cluster.AgentStatusAsync("d0").GetAwaiter().GetResult()}\n{cluster.Logs()}");
        Assert.Contains("no space", faulted.GetProperty("fault").GetString(), StringComparison.OrdinalIgnoreCase);
        await Eventually.TrueAsync(async () => await cluster.ScalarAsync("""
                SELECT count(*) FROM {schema}.mt_events WHERE stream_id = 'volume-full' AND type = 'mirror_state_changed'
                  AND data->>'deviceId' = 'd0' AND data->>'state' = 'Degraded' AND data->>'reason' LIKE '%no space%'
                """) >= 1,
            TimeSpan.FromSeconds(30), () => $"the controller did not degrade d0: {cluster.VolumeStatusAsync("full").GetAwaiter().GetResult()}\n{cluster.Logs()}");
        Assert.NotEqual("InSync", await cluster.MirrorStateAsync("full", "d0"));
        await Mirrors.AssertReadsEqualAsync(cluster, "full", model.Expected(), BlockSize);

        // Nothing is recorded as applied that is not on the disk, and the device did not skip past the failure.
        // The offset is read before the recorded writes: a faulted device may still record a shorter batch whose
        // blocks were allocated by the attempt that failed, and it records the offset with the writes in one
        // transaction, so every write before the offset read here is among the writes read after it.
        var nextOffset = await cluster.AgentNextOffsetAsync("d0");
        var recorded = await RecordedRangesAsync(cluster, "d0", "full.d0");
        Assert.InRange(recorded.Count, 1, 59);
        var file = File.ReadAllBytes(Path.Combine(mountPoint, "full.d0.obj"));
        foreach (var (tag, first, count) in recorded)
        {
            var want = VolumeModel.Data(seedOf[tag], count, BlockSize);
            Assert.True(file.Length >= (first + count) * BlockSize, $"{tag} is recorded but its blocks [{first}, {first + count}) are not in the file");
            Assert.True(file.AsSpan((int)first * BlockSize, count * BlockSize).SequenceEqual(want), $"{tag} is recorded but its data is not on the disk");
        }
        var nextTag = NextTag(recorded, seedOf);
        var copyAt = DeviceTopic.OffsetOfCopy(cluster, "d0", nextTag, 0);
        Assert.True(nextOffset <= copyAt,
            $"d0 recorded offset {nextOffset}, past write {nextTag} (seed {seedOf[nextTag]}) at offset {copyAt}, which it did not apply; recorded: "
            + string.Join(" ", recorded.Select(r => $"{r.Tag}[{r.First}+{r.Count}]")) + "\n" + cluster.Logs());

        // Space comes back: the device resumes by itself, says so, and the volume converges.
        await disk.ResizeAsync(16 * 1024 * 1024);
        await Eventually.TrueAsync(async () => (await cluster.AgentStatusAsync("d0")).GetProperty("state").GetString() == "running",
            TimeSpan.FromSeconds(30), () => $"d0 did not resume: {cluster.AgentStatusAsync("d0").GetAwaiter().GetResult()}\n{cluster.Logs()}");
        await cluster.WaitConvergedAsync("full");
        var expected = model.Expected();
        var image = File.ReadAllBytes(Path.Combine(mountPoint, "full.d0.obj"));
        Assert.True(Mirrors.FirstDifference(image, expected.AsSpan(0, image.Length)) < 0, "d0 differs from the model after it resumed");
        Mirrors.AssertObjectFilesEqual(cluster, "full", expected, "d1");
        await Mirrors.AssertReadsEqualAsync(cluster, "full", expected, BlockSize);
        await cluster.Agent("d0").StopAsync();
    }

    [Fact]
    public async Task a_dead_letter_topic_that_cannot_be_reached_does_not_stop_the_device_and_the_refusal_is_kept_in_postgresql()
    {
        await using var cluster = await TestCluster.StartAsync(
            processEnvironment: p => p == "agent-d0" ? new Dictionary<string, string> { ["Agent__DeadLetterTimeout"] = "00:00:02" } : []);
        await cluster.CreateVolumeAsync("dl", BlockSize, 16);
        await cluster.WriteAsync("dl", 0, VolumeModel.Data(1, 1, BlockSize), wait: "applied");
        // d0's dead-letter topic lives on a broker of its own, which is down (and keeps its leadership).
        var dlq = Topics.DeadLetter("d0");
        cluster.Kafka.CreateTopic(dlq, 1);
        cluster.Kafka.SetPartitionLeader(dlq, 0, 3);
        cluster.Kafka.SetBrokerDown(3);
        var applied = (await cluster.AgentStatusAsync("d0")).GetProperty("appliedTransactions").GetInt64();

        // A corrupt transaction (CRC mismatch), then a good write.
        var data = VolumeModel.Data(2, 1, BlockSize);
        var header = new byte[TransactionHeader.Size];
        var obj = System.Text.Encoding.UTF8.GetBytes(Names.ObjectId("dl", "d0"));
        TransactionCodec.WriteHeader(header, new TransactionHeader(TransactionKind.Write, new Tag(99, 1, 1), 3, 1, BlockSize, 16), obj, default, data);
        var corrupt = (byte[])data.Clone();
        corrupt[7] ^= 1;
        var poisonAt = await DeviceTopic.ProduceRawAsync(cluster, "d0", new Message<byte[]?, byte[]?>
        {
            Value = corrupt,
            Headers = new Headers { { HeaderNames.Header, header }, { HeaderNames.Object, obj } },
        });
        var after = VolumeModel.Data(3, 1, BlockSize);
        await cluster.WriteAsync("dl", 5, after);

        await Eventually.TrueAsync(async () => (await cluster.AgentStatusAsync("d0")).GetProperty("appliedTransactions").GetInt64() > applied,
            TimeSpan.FromSeconds(30), () => $"d0 is stuck on a dead-letter topic it cannot reach\n{cluster.Logs()}");
        Assert.Equal(after, await cluster.ReadAsync("dl", 5, 1));
        // The refusal is not lost: it is an event of d0's stream, with where it came from, why, and its bytes.
        await using var cmd = cluster.DataSource.CreateCommand(
            $"SELECT data::text FROM {cluster.Schema}.mt_events WHERE stream_id = 'tagtable-d0' AND type = 'transaction_quarantined'");
        var events = new List<JsonElement>();
        await using (var r = await cmd.ExecuteReaderAsync())
            while (await r.ReadAsync()) events.Add(JsonDocument.Parse(r.GetString(0)).RootElement);
        var e = Assert.Single(events);
        Assert.Equal(0, e.GetProperty("partition").GetInt32());
        Assert.Equal(poisonAt, e.GetProperty("offset").GetInt64());
        Assert.Contains("CRC32C mismatch", e.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.False(e.GetProperty("deadLettered").GetBoolean());
        Assert.Equal(corrupt, e.GetProperty("value").GetBytesFromBase64());
        Assert.Equal(header, e.GetProperty("header").GetBytesFromBase64());
        Assert.Equal(1, (await cluster.AgentStatusAsync("d0")).GetProperty("deadLettered").GetInt64());
        // Nothing of it reached the block.
        Assert.Equal(new byte[BlockSize], await cluster.ReadAsync("dl", 3, 1));
    }

    private static async Task<List<(string Tag, long First, int Count)>> RecordedRangesAsync(TestCluster cluster, string device, string objectId)
    {
        var list = new List<(string, long, int)>();
        await using var cmd = cluster.DataSource.CreateCommand($"""
            SELECT concat_ws(':', data->'tag'->>'controllerId', data->'tag'->>'epoch', data->'tag'->>'seq'),
                   (data->>'firstBlock')::bigint, (data->>'blockCount')::int
            FROM {cluster.Schema}.mt_events WHERE stream_id = @s AND type = 'tag_recorded' AND data->>'objectId' = @o
            """);
        cmd.Parameters.AddWithValue("s", "tagtable-" + device);
        cmd.Parameters.AddWithValue("o", objectId);
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) list.Add((r.GetString(0), r.GetInt64(1), r.GetInt32(2)));
        return list;
    }

    /// <summary>The tag of the first write (in issue order) that is not among <paramref name="recorded"/>.</summary>
    private static string NextTag(List<(string Tag, long First, int Count)> recorded, Dictionary<string, int> seedOf)
    {
        var done = recorded.Select(r => r.Tag).ToHashSet(StringComparer.Ordinal);
        return seedOf.OrderBy(kv => kv.Value).First(kv => !done.Contains(kv.Key)).Key;
    }
}
