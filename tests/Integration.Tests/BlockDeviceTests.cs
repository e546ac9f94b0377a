using System.Net.Http.Json;
using System.Text.Json;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Integration.Tests.Harness;
using TaggedMirror.Nbd.Protocol;
using TaggedMirror.Nbd.Tests.Support;

namespace TaggedMirror.Integration.Tests;

/// <summary>
/// Volumes as NBD exports, through the real clients of Debian's packages (qemu-img, qemu-io, nbdinfo, nbdcopy, fio),
/// against the whole stack: every byte a client wrote must be on every mirror's object file and come back through
/// the HTTP API too.
/// </summary>
public sealed class BlockDeviceTests
{
    private const int BlockSize = 4096;
    private const int Blocks = 4096;   // 16 MiB
    private const int Size = BlockSize * Blocks;

    private static async Task<byte[]> WholeVolumeAsync(TestCluster cluster, string volume)
    {
        var image = new byte[Size];
        for (var b = 0; b < Blocks; b += 256) (await cluster.ReadAsync(volume, b, 256)).CopyTo(image, b * BlockSize);
        return image;
    }

    [Fact]
    public async Task real_clients_write_and_read_a_volume_through_nbd_and_every_mirror_holds_their_bytes()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("vm", BlockSize, Blocks);
        var uri = cluster.NbdUri("vm");
        var dir = Directory.CreateTempSubdirectory("tm-nbd-");
        try
        {
            // Listed, sized, and the block sizes advertised are the volume's.
            var list = JsonDocument.Parse(await Tool.CheckAsync("nbdinfo", "--list", "--json", $"nbd://127.0.0.1:{cluster.NbdPort}"));
            var export = list.RootElement.GetProperty("exports").EnumerateArray().Single(e => e.GetProperty("export-name").GetString() == "vm");
            Assert.Equal(Size, export.GetProperty("export-size").GetInt64());
            Assert.Equal(BlockSize, export.GetProperty("block_size_minimum").GetInt64());
            Assert.Equal(Size.ToString(System.Globalization.CultureInfo.InvariantCulture), (await Tool.CheckAsync("nbdinfo", "--size", uri)).Trim());

            // qemu-img convert of an image with data and zeroes, then compare.
            var model = new byte[Size];
            var random = new Random(5);
            for (var at = 0; at < Size; at += 256 * 1024)
            {
                if (at / (256 * 1024) % 4 != 3) random.NextBytes(model.AsSpan(at, 256 * 1024));
            }
            var image = Path.Combine(dir.FullName, "src.img");
            await File.WriteAllBytesAsync(image, model);
            await Tool.CheckAsync("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", image, uri);
            await Tool.CheckAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", image, uri);

            // qemu-io: patterns (one with FUA), zeroes, a trim, a flush; each read back by pattern.
            await Tool.CheckAsync("qemu-io", "-f", "raw",
                "-c", "write -P 0xa5 1M 1M", "-c", "write -f -P 0x5a 3M 64k", "-c", "write -z 5M 128k", "-c", "discard 6M 64k", "-c", "flush",
                "-c", "read -P 0xa5 1M 1M", "-c", "read -P 0x5a 3M 64k", "-c", "read -P 0 5M 128k", "-c", "read -P 0 6M 64k", uri);
            model.AsSpan(1 << 20, 1 << 20).Fill(0xa5);
            model.AsSpan(3 << 20, 65536).Fill(0x5a);
            model.AsSpan(5 << 20, 131072).Clear();
            model.AsSpan(6 << 20, 65536).Clear();

            // nbdcopy out of the export equals the model; every mirror's file and the API too, once applied.
            var copy = Path.Combine(dir.FullName, "out.img");
            await Tool.CheckAsync("nbdcopy", uri, copy);
            var copied = await File.ReadAllBytesAsync(copy);
            Assert.True(Mirrors.FirstDifference(model, copied) < 0, "nbdcopy out of the export differs from what was written");
            await cluster.WaitConvergedAsync("vm");
            Mirrors.AssertObjectFilesEqual(cluster, "vm", model);
            var read = await WholeVolumeAsync(cluster, "vm");
            Assert.True(Mirrors.FirstDifference(model, read) < 0, "the HTTP API reads differ from what NBD wrote");

            // nbdcopy into the export, with zero runs (sent as WRITE_ZEROES).
            var second = new byte[Size];
            new Random(6).NextBytes(second.AsSpan(0, Size / 2));
            var secondFile = Path.Combine(dir.FullName, "second.img");
            await File.WriteAllBytesAsync(secondFile, second);
            await Tool.CheckAsync("nbdcopy", "--flush", secondFile, uri);
            await cluster.WaitConvergedAsync("vm");
            Mirrors.AssertObjectFilesEqual(cluster, "vm", second);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>
    /// A controller's first reads of a volume each wait until the mirror applied its whole log as it stood (writes an
    /// earlier controller acknowledged are not tracked in memory). nbdcopy sends hundreds of reads at once over four
    /// connections, right after the controller (re)started: every one must be answered with the volume's bytes. They
    /// failed with EIO ("too many clients already") when each waiting read polled PostgreSQL on its own connection.
    /// </summary>
    [Fact]
    public async Task hundreds_of_first_reads_at_once_after_a_controller_restart_all_return_the_volume()
    {
        await using var cluster = await TestCluster.StartAsync();
        const int blocks = 65536;   // 256 MiB: a thousand 256 KiB reads, 256 in flight
        await cluster.CreateVolumeAsync("flood", BlockSize, blocks);
        var model = new byte[(long)blocks * BlockSize];
        var random = new Random(23);
        async Task WriteAsync(int block)
        {
            var bytes = new byte[64 * BlockSize];
            random.NextBytes(bytes);
            await cluster.WriteAsync("flood", block, bytes);
            bytes.CopyTo(model, (long)block * BlockSize);
        }
        foreach (var block in new[] { 0, 4097, 30000 }) await WriteAsync(block);
        await cluster.RestartControllerAsync(kill: false);
        // Acknowledged once in the log, not yet applied when the reads come: they wait for the mirror.
        for (var block = blocks - 1024; block < blocks; block += 64) await WriteAsync(block);

        var dir = Directory.CreateTempSubdirectory("tm-nbd-flood-");
        try
        {
            var copy = Path.Combine(dir.FullName, "out.img");
            // The first mirror stalls for two seconds (a scheduler pause, a disk stall) as the reads arrive: they all wait.
            cluster.Agent("d0").Pause();
            var resume = Task.Delay(TimeSpan.FromSeconds(2)).ContinueWith(_ => cluster.Agent("d0").Resume(), TaskScheduler.Default);
            await Tool.CheckAsync("nbdcopy", "--no-extents", "--requests=64", "--connections=4", cluster.NbdUri("flood"), copy);
            await resume;
            var copied = await File.ReadAllBytesAsync(copy);
            Assert.True(Mirrors.FirstDifference(model, copied) < 0, "nbdcopy out of the export differs from what was written");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>
    /// BLOCK_STATUS: a volume maps its data and its holes (never written, zeroed, trimmed) as its in-sync mirror's file
    /// system holds them, and only after that mirror applied every write answered before: a block written through the
    /// HTTP API is data at once on an NBD connection, a block zeroed is a hole at once. So nbdcopy and qemu-img, which
    /// skip what is reported as zeros, copy exactly the volume's bytes.
    /// </summary>
    [Fact]
    public async Task a_volume_maps_its_holes_and_data_after_every_answered_write_so_copies_skip_only_zeros()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("bs", BlockSize, Blocks);
        var uri = cluster.NbdUri("bs");
        var model = new byte[Size];
        await Tool.CheckAsync("qemu-io", "-f", "raw", "-c", "write -P 0x11 64k 128k", "-c", "write -P 0x22 3M 4k", "-c", $"write -P 0x33 {Size - BlockSize} 4k",
            "-c", "write -z 96k 32k", "-c", "discard 8M 1M", "-c", "flush", uri);
        model.AsSpan(64 << 10, 128 << 10).Fill(0x11);
        model.AsSpan(96 << 10, 32 << 10).Clear();
        model.AsSpan(3 << 20, BlockSize).Fill(0x22);
        model.AsSpan(Size - BlockSize, BlockSize).Fill(0x33);

        long[][] data = [[64 << 10, 32 << 10], [128 << 10, 64 << 10], [3 << 20, BlockSize], [Size - BlockSize, BlockSize]];
        Assert.Equal(NbdMap.Expected(data, Size), await NbdMap.OfAsync(uri));

        // Every answered write is seen at once: written through the API (not waiting for the mirrors to apply it), then
        // asked on the NBD connection; zeroed, then asked again.
        await using (var c = await RawClient.OpenAsync(cluster.NbdPort, "bs", allocation: true))
        {
            var random = new Random(17);
            for (ulong i = 0; i < 40; i++)
            {
                var block = random.Next(1024, 2048);
                var bytes = VolumeModel.Data((int)i + 1, 1, BlockSize);
                await cluster.WriteAsync("bs", block, bytes);
                bytes.CopyTo(model, block * BlockSize);
                Assert.Equal([((uint)BlockSize, (uint)NbdAllocation.Data)], await c.BlockStatusAsync(2 * i, (ulong)block * BlockSize, BlockSize, NbdCommandFlags.RequestOne));
                using (var zeroed = await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/volumes/bs/blocks/{block}/zero"), null))
                    zeroed.EnsureSuccessStatusCode();
                model.AsSpan(block * BlockSize, BlockSize).Clear();
                Assert.Equal([((uint)BlockSize, (uint)(NbdAllocation.Hole | NbdAllocation.Zero))], await c.BlockStatusAsync(2 * i + 1, (ulong)block * BlockSize, BlockSize, NbdCommandFlags.RequestOne));
            }
        }

        var dir = Directory.CreateTempSubdirectory("tm-nbd-map-");
        try
        {
            var copy = Path.Combine(dir.FullName, "out.img");
            await Tool.CheckAsync("nbdcopy", uri, copy);
            var copied = await File.ReadAllBytesAsync(copy);
            Assert.True(Mirrors.FirstDifference(model, copied) < 0, "nbdcopy out of the export differs from the volume");
            var qcow = Path.Combine(dir.FullName, "out.qcow2");
            await Tool.CheckAsync("qemu-img", "convert", "-f", "raw", "-O", "qcow2", uri, qcow);
            await Tool.CheckAsync("qemu-img", "compare", "-f", "qcow2", "-F", "raw", qcow, uri);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
        await cluster.WaitConvergedAsync("bs");
        Mirrors.AssertObjectFilesEqual(cluster, "bs", model);
    }


    [Fact]
    public async Task a_trim_and_a_zeroing_of_gigabytes_cost_each_log_a_few_messages_and_every_mirror_reads_zeros_there()
    {
        // 4 GiB: as mkfs or blkdiscard discard a whole device. Before zeroes had a transaction of their own, each went
        // through every mirror's log as data (4 GiB of zero bytes per mirror, in pieces of one write).
        const long bigBlocks = 1L << 20;
        const long gib = 1L << 30;
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("big", BlockSize, bigBlocks);
        var uri = cluster.NbdUri("big");
        // Data at the start, across the 2 GiB mark and at the very end; the trim and the zeroing leave a block of it
        // on each side of what they cover.
        await Tool.CheckAsync("qemu-io", "-f", "raw",
            "-c", "write -P 0x11 0 1M", "-c", $"write -P 0x22 {2 * gib - (1 << 19)} 1M", "-c", $"write -P 0x33 {4 * gib - (1 << 20)} 1M", "-c", "flush", uri);
        await cluster.WaitConvergedAsync("big");
        long Allocated(string device) => long.Parse(Tool.CheckAsync("stat", "-c", "%b", Path.Combine(cluster.DataDirectory(device), $"big.{device}.obj"))
            .GetAwaiter().GetResult().Trim(), System.Globalization.CultureInfo.InvariantCulture) * 512;
        var before = new Dictionary<string, (long Offset, long Allocated)>();
        foreach (var d in cluster.Devices) before[d] = (await cluster.AgentNextOffsetAsync(d), Allocated(d));

        // A discard of everything from the second block to the block before the last (two requests: qemu-io sends at
        // most 2 GiB less 512 bytes in one); then WRITE_ZEROES over the middle 2 GiB (-z; -u lets the server unmap).
        await Tool.CheckAsync("qemu-io", "-f", "raw",
            "-c", $"discard {BlockSize} {2 * gib - BlockSize}", "-c", $"discard {2 * gib} {2 * gib - BlockSize}",
            "-c", $"write -z -u {gib} {gib}", "-c", $"write -z -u {2 * gib} {gib}", "-c", "flush",
            "-c", $"read -P 0x11 0 {BlockSize}", "-c", $"read -P 0 {BlockSize} {(1 << 20) - BlockSize}",
            "-c", $"read -P 0 {2 * gib - (1 << 19)} 1M", "-c", $"read -P 0 {4 * gib - (1 << 20)} {(1 << 20) - BlockSize}",
            "-c", $"read -P 0x33 {4 * gib - BlockSize} {BlockSize}", uri);
        await cluster.WaitConvergedAsync("big");

        var expected = new byte[1 << 20];
        expected.AsSpan(0, BlockSize).Fill(0x11);
        foreach (var d in cluster.Devices)
        {
            // qemu sends a discard of up to 2 GiB in one request, a zeroing in requests of the export's largest payload;
            // each is a header in every mirror's log (as data they were 6 GiB of zeroes per mirror).
            var end = await cluster.AgentNextOffsetAsync(d);
            var bytes = DeviceTopic.BytesBetween(cluster, d, before[d].Offset, end);
            Assert.True(bytes < (1 << 20), $"the trim and the zeroing put {bytes} bytes in {end - before[d].Offset} messages in {d}'s log");
            var file = Path.Combine(cluster.DataDirectory(d), $"big.{d}.obj");
            using var handle = File.OpenHandle(file);
            var at = new byte[1 << 20];
            Assert.Equal(1 << 20, RandomAccess.Read(handle, at, 0));
            Assert.True(Mirrors.FirstDifference(expected, at) < 0, $"{d}: the first MiB is not one block of 0x11 and zeros");
            Assert.Equal(1 << 20, RandomAccess.Read(handle, at, 2 * gib - (1 << 19)));
            Assert.True(at.All(b => b == 0), $"{d}: the MiB across 2 GiB is not zeros");
            Assert.Equal(1 << 20, RandomAccess.Read(handle, at, 4 * gib - (1 << 20)));
            Assert.True(at.AsSpan(0, (1 << 20) - BlockSize).IndexOfAnyExcept((byte)0) < 0 && at.AsSpan((1 << 20) - BlockSize).IndexOfAnyExcept((byte)0x33) < 0,
                $"{d}: the last MiB is not zeros and one block of 0x33");
            // The devices gave the space back (the test's data directories are on tmpfs, which punches holes).
            var allocated = Allocated(d);
            Assert.True(allocated < before[d].Allocated - (2 << 20), $"{d}: {allocated} bytes allocated after the trim, {before[d].Allocated} before");
        }
        Assert.True((await cluster.ReadAsync("big", (2 * gib - (1 << 19)) / BlockSize, 256)).All(b => b == 0), "the API reads something other than zeros");

        // On a volume small enough to scrub: data, a trim and a zeroing inside it; the mirrors equal the model, and
        // verify finds every block's recorded checksum that of what it holds (a zero block's where zeroed).
        await cluster.CreateVolumeAsync("small", BlockSize, Blocks);
        var model = new byte[Size];
        new Random(7).NextBytes(model);
        var image = Path.Combine(cluster.Directory, "small.img");
        await File.WriteAllBytesAsync(image, model);
        var small = cluster.NbdUri("small");
        await Tool.CheckAsync("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", image, small);
        await Tool.CheckAsync("qemu-io", "-f", "raw", "-c", "discard 1M 3M", "-c", "write -z 8M 1028k", "-c", "flush", small);
        model.AsSpan(1 << 20, 3 << 20).Clear();
        model.AsSpan(8 << 20, 1028 << 10).Clear();
        await cluster.WaitConvergedAsync("small");
        Mirrors.AssertObjectFilesEqual(cluster, "small", model);
        await Mirrors.AssertReadsEqualAsync(cluster, "small", model, BlockSize);
        using (var r = await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/volumes/small/verify"), null))
            Assert.True(r.StatusCode == System.Net.HttpStatusCode.Accepted, $"verify: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
        VerifyReport? report = null;
        await Eventually.TrueAsync(async () =>
            {
                report = await cluster.Http.GetFromJsonAsync<VerifyReport>(new Uri($"{cluster.Controller.Url}/volumes/small/verify"), JsonSerializerOptions.Web);
                return report!.State != "running";
            },
            TimeSpan.FromSeconds(90), () => $"verify did not finish: {JsonSerializer.Serialize(report)}");
        Assert.True(report!.State == "done" && report.Mismatches.Count == 0 && report.BlocksChecked == Blocks, JsonSerializer.Serialize(report));
    }

    [Fact]
    public async Task a_zero_a_mirror_missed_is_resynced_as_exactly_its_blocks_and_a_rebuild_replays_zeros_to_the_same_bytes()
    {
        await using var cluster = await TestCluster.StartAsync(controllerSettings: new() { ["Controller__DeliveryTimeout"] = "00:00:02" });
        await cluster.CreateVolumeAsync("tz", BlockSize, Blocks);
        var uri = cluster.NbdUri("tz");
        // 3 MiB of data: with what follows, the log stays inside the development broker's 5 MiB and holds its start.
        await Tool.CheckAsync("qemu-io", "-f", "raw", "-c", "write -P 0xab 0 1M", "-c", "write -P 0xcd 1M 1M", "-c", "write -P 0xef 2M 1M", "-c", "flush", uri);
        var model = new byte[Size];
        model.AsSpan(0, 1 << 20).Fill(0xab);
        model.AsSpan(1 << 20, 1 << 20).Fill(0xcd);
        model.AsSpan(2 << 20, 1 << 20).Fill(0xef);
        await cluster.WaitConvergedAsync("tz");

        // d1's log is unreachable: a trim and a zeroing reach d0's log only, and d1 runs degraded.
        cluster.Kafka.SetBrokerDown(cluster.BrokerOf("d1"));
        await Tool.CheckAsync("qemu-io", "-f", "raw", "-c", $"discard {BlockSize * 10} {BlockSize * 300}", "-c", "write -z 2M 64k", "-c", "flush", uri);
        model.AsSpan(BlockSize * 10, BlockSize * 300).Clear();
        model.AsSpan(2 << 20, 65536).Clear();
        Assert.Equal("Degraded", await cluster.MirrorStateAsync("tz", "d1"));
        cluster.Kafka.SetBrokerUp(cluster.BrokerOf("d1"));
        await cluster.WaitConvergedAsync("tz");
        Mirrors.AssertObjectFilesEqual(cluster, "tz", model);
        // Exactly the zeroed blocks were copied to d1: the two zeros' tags, 300 + 16 blocks.
        var missed = (await cluster.RecordedTagsAsync("d0", "tz")).Except(await cluster.RecordedTagsAsync("d1", "tz")).ToHashSet();
        var resyncs = await cluster.ResyncsAsync("tz");
        Assert.Equal(missed.Order(), resyncs.SelectMany(r => r.CompletedTags).Distinct().Order());
        Assert.Equal(316, resyncs.Sum(r => (long)r.BlockCount));

        // d0 rebuilt from its log, whose zeros it replays: the same bytes, and the verify closing it finds nothing.
        using (var r = await cluster.Http.PostAsync(new Uri($"{cluster.Controller.Url}/devices/d0/rebuild"), null))
            Assert.True(r.StatusCode == System.Net.HttpStatusCode.Accepted, $"rebuild: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
        DeviceRebuildReport? report = null;
        await Eventually.TrueAsync(async () =>
            {
                report = await cluster.Http.GetFromJsonAsync<DeviceRebuildReport>(new Uri($"{cluster.Controller.Url}/devices/d0/rebuild"), JsonSerializerOptions.Web);
                return report!.Phase is "done" or "failed";
            },
            TimeSpan.FromSeconds(120), () => $"the rebuild did not end: {JsonSerializer.Serialize(report)}\n{cluster.Logs()}");
        Assert.True(report!.Phase == "done" && report.Replay is { LogTruncated: false }, JsonSerializer.Serialize(report));
        Assert.All(report.Verifies, v => Assert.True(v.State == "done" && v.Mismatches.Count == 0, JsonSerializer.Serialize(v)));
        await cluster.WaitConvergedAsync("tz");
        Mirrors.AssertObjectFilesEqual(cluster, "tz", model);
        await Mirrors.AssertReadsEqualAsync(cluster, "tz", model, BlockSize);
    }

    [Fact]
    public async Task fio_verifies_random_writes_at_queue_depth_32_and_the_mirrors_end_identical()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("fio", BlockSize, Blocks);
        var dir = Directory.CreateTempSubdirectory("tm-nbd-");
        try
        {
            var r = await Tool.RunAsync("fio", ["--name=verify", "--ioengine=nbd", $"--uri={cluster.NbdUri("fio")}", "--rw=randwrite", "--bs=4k", "--iodepth=32",
                $"--size={Size}", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--output-format=json", $"--directory={dir.FullName}"], TimeSpan.FromMinutes(5));
            Assert.True(r.ExitCode == 0, r.ToString());
            using var doc = JsonDocument.Parse(r.Stdout[r.Stdout.IndexOf('{', StringComparison.Ordinal)..]);
            var job = doc.RootElement.GetProperty("jobs")[0];
            Assert.Equal(0, job.GetProperty("error").GetInt32());
            Assert.Equal(Size, job.GetProperty("read").GetProperty("io_bytes").GetInt64());
            await cluster.WaitConvergedAsync("fio");
            var image = await WholeVolumeAsync(cluster, "fio");
            Mirrors.AssertObjectFilesEqual(cluster, "fio", image);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task a_controller_killed_while_fio_writes_loses_no_write_fio_saw_answered()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("crash", BlockSize, Blocks);
        var dir = Directory.CreateTempSubdirectory("tm-nbd-");
        await using var proxy = new NbdAnsweringProxy(cluster.NbdPort);
        try
        {
            // A paced random-write job with verification; the same job definition replays it for the verify.
            string[] Job(int port, params string[] extra) =>
            [
                "--name=crash", "--ioengine=nbd", $"--uri=nbd://127.0.0.1:{port}/crash", "--rw=randwrite", "--bs=4k", "--iodepth=32",
                $"--size={Size}", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--randseed=1234", "--output-format=json", .. extra,
            ];
            var fio = Tool.RunAsync("fio", Job(proxy.Port, "--rate_iops=1500"), TimeSpan.FromMinutes(3), dir.FullName);
            await Eventually.TrueAsync(async () => (await cluster.VolumeStatusAsync("crash")).GetProperty("writesAccepted").GetInt64() >= 1500,
                TimeSpan.FromSeconds(60), () => "fio's writes did not start\n" + cluster.Logs());
            cluster.Controller.Kill();
            var killed = await fio;
            // fio was told EIO for what was in flight and stopped, saving which writes completed.
            Assert.True(killed.ExitCode != 0, $"fio did not notice the controller's death: {killed}");
            Assert.True(proxy.Answered > 0, "no request was in flight when the controller died");
            var state = Directory.GetFiles(dir.FullName, "*verify.state");
            Assert.True(state.Length == 1, $"fio saved no verify state: {killed}");
            var written = JsonDocument.Parse(killed.Stdout[killed.Stdout.IndexOf('{', StringComparison.Ordinal)..]).RootElement
                .GetProperty("jobs")[0].GetProperty("write").GetProperty("io_bytes").GetInt64();
            Assert.True(written > 0 && written < Size, $"fio wrote {written} bytes before the kill");

            await cluster.StartControllerAsync();
            await cluster.WaitConvergedAsync("crash");
            // Every write fio saw answered, read back through NBD from the restarted controller and checked. fio's state
            // counts the writes it was told failed (EIO, fate unknown) as written too, so a block of one of those may
            // read back without its data: those, and only those, are allowed to fail.
            var verify = await Tool.RunAsync("fio", Job(cluster.NbdPort, "--verify_only", "--verify_state_load=1", "--verify_fatal=0"), TimeSpan.FromMinutes(3), dir.FullName);
            var failed = System.Text.RegularExpressions.Regex.Matches(verify.Stderr, @"verify: .* offset (\d+), length")
                .Select(m => ulong.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();
            var lost = failed.Except(proxy.Unanswered).Order().ToList();
            Assert.True(lost.Count == 0, $"writes fio saw answered read back wrong at offsets {string.Join(", ", lost)}\n{verify}");
            Assert.True(verify.ExitCode == 0 || failed.Count > 0, $"fio's verification failed without naming a block: {verify}");
            var job = JsonDocument.Parse(verify.Stdout[verify.Stdout.IndexOf('{', StringComparison.Ordinal)..]).RootElement.GetProperty("jobs")[0];
            var verified = job.GetProperty("read").GetProperty("io_bytes").GetInt64();
            Assert.True(verified >= written, $"fio verified {verified} bytes of the {written} it wrote");
            // And the mirrors hold the same bytes, which the API returns.
            var image = await WholeVolumeAsync(cluster, "crash");
            Mirrors.AssertObjectFilesEqual(cluster, "crash", image);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task requests_the_volume_cannot_take_are_refused_and_change_nothing()
    {
        await using var cluster = await TestCluster.StartAsync();
        await cluster.CreateVolumeAsync("edge", BlockSize, Blocks);
        await using (var c = await RawClient.OpenAsync(cluster.NbdPort, "edge"))
        {
            ulong cookie = 0;
            foreach (var (command, offset, length, expected) in new (NbdCommand, ulong, uint, NbdError)[]
            {
                (NbdCommand.Write, (ulong)Size, 4096, NbdError.NoSpace),
                (NbdCommand.Write, (ulong)Size - 4096, 8192, NbdError.NoSpace),
                (NbdCommand.Write, 512, 4096, NbdError.InvalidArgument),     // not aligned to the volume's 4096-byte blocks
                (NbdCommand.Write, 0, 512, NbdError.InvalidArgument),
                (NbdCommand.WriteZeroes, (ulong)Size, 4096, NbdError.NoSpace),
                (NbdCommand.Read, (ulong)Size, 4096, NbdError.InvalidArgument),
                (NbdCommand.Trim, 4096, 0, NbdError.InvalidArgument),
            })
            {
                await c.SendRequestAsync(command, ++cookie, offset, length, command == NbdCommand.Write ? new byte[length] : null);
                var reply = await c.ReadReplyAsync();
                Assert.True(reply.Error == expected, $"{command} at {offset}+{length}: {reply.Error} ({reply.Message})");
            }
            // Framing that cannot be trusted: this connection only is closed.
            await c.SendRequestAsync((NbdCommand)42, ++cookie, 0, 4096);
            Assert.Equal(NbdError.InvalidArgument, (await c.ReadReplyAsync()).Error);
            Assert.True(await c.ClosedByServerAsync());
        }
        await using (var c = await RawClient.HandshakeAsync(cluster.NbdPort))
        {
            await c.SendOptionAsync(NbdOption.Go, RawClient.ExportQuery("no-such-volume"));
            var refusal = await c.ReadOptionReplyAsync();
            Assert.Equal(NbdReplyType.ErrUnknown, refusal.Type);
            Assert.Contains("no volume named 'no-such-volume'", System.Text.Encoding.UTF8.GetString(refusal.Data), StringComparison.Ordinal);
        }
        var status = await cluster.VolumeStatusAsync("edge");
        Assert.Equal(0, status.GetProperty("writesAccepted").GetInt64());
        await Tool.CheckAsync("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 4k", "-c", "read -P 0x11 0 4k", cluster.NbdUri("edge"));
    }
}
