using TaggedMirror.Cli.Api;
using TaggedMirror.Cli.Commands;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Tests;

public sealed class StatusViewTests
{
    private static readonly DateTimeOffset At = new(2026, 11, 22, 5, 0, 0, TimeSpan.Zero);

    /// <summary>Two volumes: d1 of "alpha" Degraded with a reason, d1 of "beta" Resyncing a full copy at 50%, two recent resyncs.</summary>
    private static VolumeStatus[] KnownState() =>
    [
        new VolumeStatus("alpha", 4096, 256, 0, 1, Owned: true, WritesAccepted: 1234, BytesAccepted: 5_054_464, InflightWrites: 3,
            [
                new MirrorStatus("d0", "alpha-d0", "InSync", null, 0, 0, 0, 100, 100, 0),
                new MirrorStatus("d1", "alpha-d1", "Degraded", "log unreachable: delivery timed out", 42, 172_032, 7, 140, 98, 42),
            ],
            new ResyncSummary(5, 1_048_576,
            [
                new ResyncRecord("1:3:77", "d0", "d1", 12, 8, false, 32_768, 12.5, At),
            ])),
        new VolumeStatus("beta", 512, 1000, 24, 2, Owned: false, WritesAccepted: 9, BytesAccepted: 4608, InflightWrites: 0,
            [
                new MirrorStatus("d0", "beta-d0", "InSync", null, 1, 0, 0, 10, 10, 0),
                new MirrorStatus("d1", "beta-d1", "Resyncing", "full copy after truncation", 0, 0, 0, 10, 10, 0, 512, 1024),
            ],
            new ResyncSummary(2, 262_144,
            [
                new ResyncRecord(null, "d0", "d1", 1000, 16, true, 8192, 3.25, At.AddSeconds(5)),
            ])),
    ];

    private static string[] Lines(string text) => text.Split('\n');

    private static string LineWith(string text, params string[] parts) =>
        Lines(text).SingleOrDefault(l => parts.All(p => l.Contains(p, StringComparison.Ordinal)))
        ?? throw new Xunit.Sdk.XunitException($"no single line contains all of [{string.Join(", ", parts)}] in:\n{text}");

    [Fact]
    public void Plain_text_has_a_row_per_volume_with_size_writes_and_owner()
    {
        var text = StatusView.ToPlainText(KnownState());
        var alpha = LineWith(text, "alpha", "1 MiB", "4,096 B");
        Assert.Contains("1,234", alpha, StringComparison.Ordinal);
        Assert.Contains("4.8 MiB", alpha, StringComparison.Ordinal);
        Assert.Contains("yes", alpha, StringComparison.Ordinal);
        var beta = LineWith(text, "beta", "512 B");
        Assert.Contains("512 KiB", beta, StringComparison.Ordinal); // (1000 + 24) blocks of 512 B
        Assert.Contains("no", beta, StringComparison.Ordinal);
    }

    [Fact]
    public void Plain_text_shows_mirror_states_reasons_counts_and_full_copy_progress()
    {
        var text = StatusView.ToPlainText(KnownState());
        var degraded = LineWith(text, "alpha", "d1", "Degraded");
        Assert.Contains("log unreachable: delivery timed out", degraded, StringComparison.Ordinal);
        Assert.Contains(" 42 ", degraded, StringComparison.Ordinal);
        Assert.Contains("168 KiB", degraded, StringComparison.Ordinal);
        var resyncing = LineWith(text, "beta", "d1", "Resyncing");
        Assert.Contains("50%", resyncing, StringComparison.Ordinal);
        Assert.Contains("(512/1024)", resyncing, StringComparison.Ordinal);
        Assert.Contains("full copy after truncation", resyncing, StringComparison.Ordinal);
        Assert.Equal(2, Lines(text).Count(l => l.Contains("InSync", StringComparison.Ordinal)));
        Assert.DoesNotContain("%", LineWith(text, "alpha", "d1", "Degraded"), StringComparison.Ordinal);
    }

    [Fact]
    public void Plain_text_lists_recent_resyncs_with_tag_or_full_copy_and_source_to_target()
    {
        var text = StatusView.ToPlainText(KnownState());
        var tagged = LineWith(text, "alpha", "1:3:77");
        Assert.Contains("d0 → d1", tagged, StringComparison.Ordinal);
        Assert.Contains("12..19", tagged, StringComparison.Ordinal);
        Assert.Contains("32 KiB", tagged, StringComparison.Ordinal);
        Assert.Contains("12.5", tagged, StringComparison.Ordinal);
        var full = LineWith(text, "beta", StatusView.FullCopyLabel, "d0 → d1");
        Assert.Contains("1000..1015 (ext)", full, StringComparison.Ordinal);
        Assert.Contains("8 KiB", full, StringComparison.Ordinal);
        Assert.Contains("7 resyncs in all, 1.3 MiB copied", text, StringComparison.Ordinal); // 1.25 MiB, caption under the resyncs table
    }

    [Fact]
    public void Plain_text_has_no_ansi_escapes()
    {
        var text = StatusView.ToPlainText(KnownState());
        Assert.DoesNotContain('\u001b', text);
    }

    [Fact]
    public void State_colours_follow_severity()
    {
        Assert.Equal("green", StatusView.StateColour("InSync"));
        Assert.Equal("yellow", StatusView.StateColour("Resyncing"));
        Assert.Equal("yellow", StatusView.StateColour("Rebuilding"));
        Assert.Equal("red", StatusView.StateColour("Degraded"));
        Assert.Equal("red", StatusView.StateColour("NeedsFullCopy"));
    }

    [Fact]
    public void Json_round_trips_the_known_state()
    {
        var state = KnownState();
        var json = StatusView.ToJson(state);
        var back = StatusView.FromJson(json);
        Assert.Equal(state.Length, back.Length);
        for (var i = 0; i < state.Length; i++)
        {
            Assert.Equal(state[i] with { Mirrors = [], Resyncs = null }, back[i] with { Mirrors = [], Resyncs = null });
            Assert.Equal(state[i].Mirrors, back[i].Mirrors);
            Assert.Equal(state[i].Resyncs!.Count, back[i].Resyncs!.Count);
            Assert.Equal(state[i].Resyncs!.BytesCopied, back[i].Resyncs!.BytesCopied);
            Assert.Equal(state[i].Resyncs!.Recent, back[i].Resyncs!.Recent);
        }
    }

    [Fact]
    public void Json_uses_the_controllers_field_names()
    {
        var json = StatusView.ToJson(KnownState());
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        var first = doc.RootElement[0];
        Assert.Equal("alpha", first.GetProperty("name").GetString());
        Assert.False(first.TryGetProperty("totalBlocks", out _));
        var mirror = doc.RootElement[1].GetProperty("mirrors")[1];
        Assert.Equal("Resyncing", mirror.GetProperty("state").GetString());
        Assert.Equal(512, mirror.GetProperty("fullCopyDoneBlocks").GetInt64());
        Assert.Equal(1024, mirror.GetProperty("fullCopyTotalBlocks").GetInt64());
        var recent = doc.RootElement[1].GetProperty("resyncs").GetProperty("recent")[0];
        Assert.Equal(System.Text.Json.JsonValueKind.Null, recent.GetProperty("tag").ValueKind);
    }

    [Theory]
    [InlineData("2s", 2000)]
    [InlineData("500ms", 500)]
    [InlineData("1m", 60000)]
    [InlineData("3", 3000)]
    public void Interval_parses(string text, int ms) => Assert.Equal(TimeSpan.FromMilliseconds(ms), StatusCommand.ParseInterval(text));

    [Theory]
    [InlineData("0s")]
    [InlineData("abc")]
    [InlineData("-1s")]
    public void Interval_rejects_bad_values(string text) => Assert.Throws<CliException>(() => StatusCommand.ParseInterval(text));
}
