using System.Globalization;
using System.Text;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;

namespace TaggedMirror.Integration.Tests;

/// <summary>One installation shared by every seeded schedule; each schedule uses its own volume.</summary>
public sealed class RandomScheduleCluster : IAsyncLifetime
{
    internal TestCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync() => Cluster = await TestCluster.StartAsync(controllerSettings: new()
    {
        ["Controller__DeliveryTimeout"] = "00:00:01.500",
        ["Controller__RetireMatchedAfter"] = "00:00:01",
        ["Controller__LagTimeout"] = "00:00:05",
    });

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

/// <summary>
/// Model-based: seeded random schedules of writes, appends and faults (device agent killed, a device's broker
/// down, PostgreSQL restarted, controller killed between ops or between the copies of a write). After each,
/// once the volume has converged (faults one at a time): the mirrors are byte-identical, every acknowledged write is there, the tag
/// tables are empty, and every resync copied a write its target really lacked, and nothing else. The seed list
/// is fixed so CI repeats; TM_SOAK=1 (or TM_RANDOM_SEEDS=N) runs more.
/// </summary>
public sealed class RandomScheduleTests(RandomScheduleCluster fixture) : IClassFixture<RandomScheduleCluster>
{
    private const int BlockSize = 4096;
    private const long Blocks = 96;

    public static IEnumerable<object[]> Seeds()
    {
        var count = int.TryParse(Environment.GetEnvironmentVariable("TM_RANDOM_SEEDS"), CultureInfo.InvariantCulture, out var n) ? n
            // 8 in the normal suite: the overlapping-fault schedules (50 seeds, a quarter of their episodes a single
            // fault) cover the fault mix too; this one keeps the exact-resync check. TM_SOAK=1 runs 300.
            : Environment.GetEnvironmentVariable("TM_SOAK") is null ? 8 : 300;
        return Enumerable.Range(1, count).Select(s => new object[] { s });
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public async Task a_seeded_schedule_of_writes_appends_and_faults_converges_to_identical_mirrors(int seed)
    {
        var cluster = fixture.Cluster;
        var run = new ScheduleRun(cluster, $"r{seed}", seed);
        try
        {
            await run.ExecuteAsync();
            await run.CheckAsync();
        }
        catch (Exception ex) when (ex is not Xunit.Sdk.XunitException)
        {
            Assert.Fail($"seed {seed} failed: {ex}\nschedule:\n{run.Schedule}\n{cluster.Logs()}");
        }
        catch (Xunit.Sdk.XunitException ex)
        {
            Assert.Fail($"seed {seed} failed: {ex.Message}\nschedule:\n{run.Schedule}");
        }
    }

    private sealed class ScheduleRun(TestCluster cluster, string volume, int seed)
    {
        private readonly Random _rng = new(seed);
        private readonly List<Op> _writes = [];
        private readonly List<(long First, byte[] Data)> _appends = [];
        private int _order;

        public StringBuilder Schedule { get; } = new();

        public async Task ExecuteAsync()
        {
            await cluster.CreateVolumeAsync(volume, BlockSize, Blocks);
            var steps = _rng.Next(2, 5);
            var faults = 0;
            for (var i = 0; i < steps; i++)
            {
                var roll = _rng.Next(10);
                if (roll < 4 || faults >= 1)
                {
                    await WritesAsync(_rng.Next(5, 25));
                }
                else if (roll < 5)
                {
                    await AppendsAsync(_rng.Next(1, 4));
                }
                else
                {
                    faults++;
                    await FaultAsync(_rng.Next(5));
                    // Faults come one at a time: the volume heals before the next (see the README's known gaps
                    // for a second fault on the other mirror while the first is still resyncing).
                    await cluster.WaitConvergedAsync(volume, TimeSpan.FromSeconds(60));
                }
            }
            await WritesAsync(5);
        }

        private async Task FaultAsync(int kind)
        {
            var device = cluster.Devices[_rng.Next(cluster.Devices.Length)];
            switch (kind)
            {
                case 0:
                    Schedule.AppendLine(CultureInfo.InvariantCulture, $"kill -9 agent {device}, writes, restart");
                    cluster.Agent(device).Kill();
                    await WritesAsync(_rng.Next(3, 15));
                    await cluster.StartAgentAsync(device);
                    break;
                case 1:
                    Schedule.AppendLine(CultureInfo.InvariantCulture, $"broker of {device} down, writes and appends, up");
                    cluster.Kafka.SetBrokerDown(cluster.BrokerOf(device));
                    await WritesAsync(_rng.Next(3, 15));
                    await AppendsAsync(_rng.Next(0, 3));
                    cluster.Kafka.SetBrokerUp(cluster.BrokerOf(device));
                    break;
                case 2:
                    Schedule.AppendLine("PostgreSQL restarted during writes");
                    var writes = WritesAsync(_rng.Next(10, 30));
                    await cluster.RestartPostgresAsync();
                    await writes;
                    // A pooled connection from before the restart fails once when next used; let the
                    // controller's API find that out before the schedule relies on it.
                    await cluster.WaitApiHealthyAsync(volume);
                    break;
                case 3:
                    Schedule.AppendLine("kill -9 controller between writes, restart");
                    await cluster.RestartControllerAsync(kill: true);
                    break;
                default:
                    // A restarted controller starts a new epoch at sequence 1: its first write is the victim.
                    Schedule.AppendLine("controller restarted to die after the first copy of its first write; restarted again");
                    await cluster.Controller.StopAsync();
                    cluster.Controller.SetEnvironment("Controller__Faults__StopAfterFirstCopyOfWrite", "1");
                    await cluster.StartControllerAsync();
                    await WriteAsync(certain: false);
                    await cluster.Controller.WaitForExitAsync(TimeSpan.FromSeconds(30));
                    cluster.Controller.SetEnvironment("Controller__Faults__StopAfterFirstCopyOfWrite", null);
                    await cluster.StartControllerAsync();
                    break;
            }
        }

        private async Task WritesAsync(int n)
        {
            Schedule.AppendLine(CultureInfo.InvariantCulture, $"{n} writes");
            for (var i = 0; i < n; i++) await WriteAsync(certain: true);
        }

        private async Task WriteAsync(bool certain)
        {
            var blocks = _rng.Next(1, 9);
            var first = _rng.NextInt64(0, Blocks - blocks + 1);
            var dataSeed = seed * 10_000 + _order;
            var data = VolumeModel.Data(dataSeed, blocks, BlockSize);
            var op = new Op(_order++, first, blocks, dataSeed, certain);
            if (!certain)
            {
                // The controller dies while this write is half sent: no answer, and it may or may not survive.
                try
                {
                    using var r = await cluster.PutBlocksAsync(volume, first, data);
                }
                catch (HttpRequestException)
                {
                }
                _writes.Add(op);
                return;
            }
            await cluster.WriteAsync(volume, first, data);
            _writes.Add(op);
        }

        private async Task AppendsAsync(int n)
        {
            Schedule.AppendLine(CultureInfo.InvariantCulture, $"{n} appends");
            for (var i = 0; i < n; i++)
            {
                var data = VolumeModel.Data(seed * 10_000 + 5_000 + _order++, _rng.Next(1, 4), BlockSize);
                using var r = await cluster.AppendAsync(volume, data);
                var body = await r.Content.ReadAsStringAsync();
                Assert.True(r.IsSuccessStatusCode, $"append: {(int)r.StatusCode} {body}");
                var answer = System.Text.Json.JsonSerializer.Deserialize<WriteResult>(body, System.Text.Json.JsonSerializerOptions.Web)!;
                _appends.Add((answer.FirstBlock, data));
            }
        }

        public async Task CheckAsync()
        {
            await cluster.WaitConvergedAsync(volume, TimeSpan.FromSeconds(90));

            // Mirrors byte-identical, sizes included.
            var d0 = cluster.ObjectFile("d0", volume);
            var d1 = cluster.ObjectFile("d1", volume);
            var size = Math.Max(Math.Max(d0.Length, d1.Length), (int)Blocks * BlockSize);
            var a = new byte[size];
            var b = new byte[size];
            d0.CopyTo(a, 0);
            d1.CopyTo(b, 0);
            var at = Mirrors.FirstDifference(a, b);
            Assert.True(at < 0, $"mirrors differ at byte {at} (block {at / BlockSize})");
            Assert.True(await cluster.ScalarAsync(
                    "SELECT count(DISTINCT ext_blocks) FROM {schema}.device_objects WHERE object_id LIKE @o", ("o", volume + ".%")) <= 1,
                "the mirrors' recorded extension lengths differ");

            // Every acknowledged write is there: each block holds the last acknowledged write to it, or a later
            // write whose fate is unknown (the one in flight when the controller died).
            for (var block = 0; block < Blocks; block++)
            {
                var candidates = new List<byte[]>();
                var certain = false;
                foreach (var w in _writes.Where(w => w.First <= block && block < w.First + w.Blocks).OrderByDescending(w => w.Order))
                {
                    candidates.Add(VolumeModel.Data(w.Seed, w.Blocks, BlockSize).AsSpan((int)(block - w.First) * BlockSize, BlockSize).ToArray());
                    if (w.Certain)
                    {
                        certain = true;
                        break;
                    }
                }
                if (!certain) candidates.Add(new byte[BlockSize]);
                var actual = a.AsSpan(block * BlockSize, BlockSize).ToArray();
                Assert.True(candidates.Any(c => c.AsSpan().SequenceEqual(actual)), $"block {block} lost an acknowledged write");
            }
            foreach (var (first, data) in _appends)
                Assert.True(a.AsSpan((int)first * BlockSize, data.Length).SequenceEqual(data), $"append at block {first} is missing");

            // Every resync copied a write its target never recorded, exactly that write's range; no full copy.
            var resyncs = await cluster.ResyncsAsync(volume);
            Assert.DoesNotContain(resyncs, r => r.Tag is null);
            foreach (var r in resyncs)
            {
                var onTarget = await cluster.RecordedTagsAsync(r.Target, volume);
                var onSource = await cluster.RecordedTagsAsync(r.Source, volume);
                foreach (var tag in r.CompletedTags)
                {
                    Assert.DoesNotContain(tag, onTarget);
                    Assert.Contains(tag, onSource);
                }
            }
            Schedule.AppendLine(CultureInfo.InvariantCulture, $"=> {resyncs.Count} resyncs, {resyncs.Sum(r => r.BlockCount)} blocks copied");
        }

        private sealed record Op(int Order, long First, int Blocks, int Seed, bool Certain);
    }
}
