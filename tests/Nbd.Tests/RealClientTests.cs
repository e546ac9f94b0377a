using System.Text.Json;
using TaggedMirror.Nbd.Tests.Support;

namespace TaggedMirror.Nbd.Tests;

/// <summary>
/// The server against the real clients of Debian's packages (installed by ops/setup.sh): qemu-io and qemu-img (qemu's
/// own NBD client), nbdinfo and nbdcopy (libnbd), fio's nbd engine. The export is in memory, so what each client
/// did is checked byte for byte against the export itself.
/// </summary>
public sealed class RealClientTests
{
    private const int Size = 8 * 1024 * 1024;

    [Fact]
    public async Task qemu_io_writes_patterns_zeroes_and_trims_and_reads_them_back()
    {
        var disk = new MemoryExport("disk", Size);
        await using var server = new TestServer(null, disk);
        // write -f: with FUA; write -z: WRITE_ZEROES; discard: TRIM (zeroes here); read -P checks every byte.
        var output = await Tool.CheckAsync("qemu-io", "-f", "raw",
            "-c", "write -P 0xa5 0 1M", "-c", "write -f -P 0x5a 1M 64k", "-c", "write -P 0x33 2M 512k",
            "-c", "write -z 2M 64k", "-c", "discard 2112k 64k", "-c", "flush",
            "-c", "read -P 0xa5 0 1M", "-c", "read -P 0x5a 1M 64k", "-c", "read -P 0 2M 128k", "-c", "read -P 0x33 2176k 384k",
            server.Uri("disk"));
        Assert.DoesNotContain("fail", output, StringComparison.OrdinalIgnoreCase);
        var bytes = disk.Snapshot();
        Assert.All(bytes[..(1 << 20)], b => Assert.Equal(0xa5, b));
        Assert.All(bytes[(1 << 20)..((1 << 20) + 65536)], b => Assert.Equal(0x5a, b));
        Assert.All(bytes[(2 << 20)..((2 << 20) + 131072)], b => Assert.Equal(0, b));
        Assert.All(bytes[((2 << 20) + 131072)..((2 << 20) + 524288)], b => Assert.Equal(0x33, b));
        Assert.True(disk.Flushes >= 1);
    }

    [Fact]
    public async Task nbdinfo_lists_every_export_with_its_size_and_block_sizes()
    {
        await using var server = new TestServer(null, new MemoryExport("one", Size), new MemoryExport("two", 2 * Size, 4096));
        var json = await Tool.CheckAsync("nbdinfo", "--list", "--json", $"nbd://127.0.0.1:{server.Port}");
        using var doc = JsonDocument.Parse(json);
        var exports = doc.RootElement.GetProperty("exports").EnumerateArray().ToDictionary(e => e.GetProperty("export-name").GetString()!);
        Assert.Equal(["one", "two"], exports.Keys.Order());
        Assert.Equal(Size, exports["one"].GetProperty("export-size").GetInt64());
        Assert.Equal(2 * Size, exports["two"].GetProperty("export-size").GetInt64());
        Assert.Equal(4096, exports["two"].GetProperty("block_size_minimum").GetInt64());
        Assert.Equal(4096, exports["two"].GetProperty("block_size_preferred").GetInt64());
        Assert.Equal(4 * 1024 * 1024, exports["two"].GetProperty("block_size_maximum").GetInt64());
        Assert.True(exports["one"].GetProperty("can_multi_conn").GetBoolean());
        Assert.True(exports["one"].GetProperty("can_flush").GetBoolean());
        Assert.True(exports["one"].GetProperty("can_fua").GetBoolean());
        Assert.True(exports["one"].GetProperty("can_zero").GetBoolean());
        Assert.True(exports["one"].GetProperty("can_trim").GetBoolean());
        var size = await Tool.CheckAsync("nbdinfo", "--size", server.Uri("two"));
        Assert.Equal((2 * Size).ToString(System.Globalization.CultureInfo.InvariantCulture), size.Trim());
    }

    [Fact]
    public async Task nbdcopy_copies_a_file_in_and_back_out_byte_for_byte()
    {
        var disk = new MemoryExport("disk", Size);
        await using var server = new TestServer(null, disk);
        var dir = Directory.CreateTempSubdirectory("tm-nbd-");
        try
        {
            // Data with runs of zeroes: nbdcopy turns those into WRITE_ZEROES.
            var source = new byte[Size];
            var random = new Random(7);
            for (var i = 0; i < Size; i += 65536)
            {
                if (i / 65536 % 3 != 0) random.NextBytes(source.AsSpan(i, 65536));
            }
            var inFile = Path.Combine(dir.FullName, "in.img");
            var outFile = Path.Combine(dir.FullName, "out.img");
            await File.WriteAllBytesAsync(inFile, source);
            await Tool.CheckAsync("nbdcopy", "--flush", inFile, server.Uri("disk"));
            Assert.Equal(source, disk.Snapshot());
            await Tool.CheckAsync("nbdcopy", server.Uri("disk"), outFile);
            Assert.Equal(source, await File.ReadAllBytesAsync(outFile));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task qemu_img_converts_an_image_into_the_export_and_compares_it_equal()
    {
        var disk = new MemoryExport("disk", Size);
        await using var server = new TestServer(null, disk);
        var dir = Directory.CreateTempSubdirectory("tm-nbd-");
        try
        {
            var image = Path.Combine(dir.FullName, "src.img");
            var source = new byte[Size];
            new Random(11).NextBytes(source.AsSpan(0, Size / 2));   // the rest stays zero: converted as zeroes
            await File.WriteAllBytesAsync(image, source);
            await disk.WriteAsync(Size - 4096, Enumerable.Repeat((byte)0xff, 4096).ToArray(), false, default);
            await Tool.CheckAsync("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", image, server.Uri("disk"));
            await Tool.CheckAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", image, server.Uri("disk"));
            Assert.Equal(source, disk.Snapshot());
            // And compare tells a difference.
            await disk.WriteAsync(4096, new byte[512], false, default);
            var differs = await Tool.RunAsync("qemu-img", ["compare", "-f", "raw", "-F", "raw", image, server.Uri("disk")]);
            Assert.Equal(1, differs.ExitCode);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task fio_verifies_random_writes_at_queue_depth_32()
    {
        var disk = new MemoryExport("disk", Size, 4096);
        await using var server = new TestServer(null, disk);
        var dir = Directory.CreateTempSubdirectory("tm-nbd-");
        try
        {
            var r = await Tool.RunAsync("fio", ["--name=verify", "--ioengine=nbd", $"--uri={server.Uri("disk")}", "--rw=randwrite", "--bs=4k", "--iodepth=32",
                $"--size={Size}", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--output-format=json", $"--directory={dir.FullName}"]);
            Assert.True(r.ExitCode == 0, r.ToString());
            using var doc = JsonDocument.Parse(r.Stdout[r.Stdout.IndexOf('{', StringComparison.Ordinal)..]);
            var job = doc.RootElement.GetProperty("jobs")[0];
            Assert.Equal(0, job.GetProperty("error").GetInt32());
            Assert.Equal(Size, job.GetProperty("write").GetProperty("io_bytes").GetInt64());
            Assert.Equal(Size, job.GetProperty("read").GetProperty("io_bytes").GetInt64());   // the verify pass read it all back
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
