using System.Text.Json;
using TaggedMirror.Contracts.TagTable;
using TaggedMirror.Contracts.Transactions;

namespace TaggedMirror.Contracts.Tests;

public sealed class ContractsJsonTests
{
    private static void AssertTagObject(JsonElement tag, Tag expected)
    {
        Assert.Equal(JsonValueKind.Object, tag.ValueKind);
        Assert.Equal(expected.ControllerId, tag.GetProperty("controllerId").GetInt32());
        Assert.Equal(expected.Epoch, tag.GetProperty("epoch").GetInt32());
        Assert.Equal(expected.Seq, tag.GetProperty("seq").GetInt64());
    }

    [Theory]
    [InlineData(TransactionKind.Write, "Write")]
    [InlineData(TransactionKind.Append, "Append")]
    [InlineData(TransactionKind.Repair, "Repair")]
    public void tag_recorded_round_trips_with_the_kind_as_a_string_and_the_tag_as_an_object(TransactionKind kind, string kindText)
    {
        var recorded = new TagRecorded(
            new Tag(3, 17, 9_007_199_254_740_993), kind, "vol-1.dev-2", 123_456_789_012, 64, kind == TransactionKind.Append,
            5, 8_000_000_000, long.MaxValue);

        var json = JsonSerializer.Serialize(recorded, ContractsJson.Default.TagRecorded);
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;

        Assert.Equal(JsonValueKind.String, root.GetProperty("kind").ValueKind);
        Assert.Equal(kindText, root.GetProperty("kind").GetString());
        AssertTagObject(root.GetProperty("tag"), recorded.Tag);
        Assert.Equal("vol-1.dev-2", root.GetProperty("objectId").GetString());
        Assert.Equal(long.MaxValue, root.GetProperty("token").GetInt64());
        Assert.Equal(recorded, JsonSerializer.Deserialize(json, ContractsJson.Default.TagRecorded));
    }

    [Fact]
    public void tag_recorded_reads_a_hand_written_document()
    {
        const string json = """
            {"tag":{"controllerId":1,"epoch":2,"seq":3},"kind":"Repair","objectId":"v.d","firstBlock":10,
             "blockCount":4,"extension":false,"partition":0,"offset":99,"token":7}
            """;
        var expected = new TagRecorded(new Tag(1, 2, 3), TransactionKind.Repair, "v.d", 10, 4, false, 0, 99, 7);
        Assert.Equal(expected, JsonSerializer.Deserialize(json, ContractsJson.Default.TagRecorded));
    }

    [Theory]
    [InlineData("token")]
    [InlineData("reconciled")]
    public void tag_retired_round_trips(string reason)
    {
        var retired = new TagRetired(new Tag(int.MaxValue, 1, long.MaxValue), -42, reason);

        var json = JsonSerializer.Serialize(retired, ContractsJson.Default.TagRetired);
        using var doc = JsonDocument.Parse(json);

        AssertTagObject(doc.RootElement.GetProperty("tag"), retired.Tag);
        Assert.Equal(-42, doc.RootElement.GetProperty("token").GetInt64());
        Assert.Equal(reason, doc.RootElement.GetProperty("reason").GetString());
        Assert.Equal(retired, JsonSerializer.Deserialize(json, ContractsJson.Default.TagRetired));
    }

    [Fact]
    public void log_truncated_round_trips()
    {
        var truncated = new LogTruncated(7, 1_234_567_890_123, 2_000_000_000_000);

        var json = JsonSerializer.Serialize(truncated, ContractsJson.Default.LogTruncated);
        using var doc = JsonDocument.Parse(json);

        Assert.Equal(7, doc.RootElement.GetProperty("partition").GetInt32());
        Assert.Equal(1_234_567_890_123, doc.RootElement.GetProperty("expectedOffset").GetInt64());
        Assert.Equal(2_000_000_000_000, doc.RootElement.GetProperty("logStartOffset").GetInt64());
        Assert.Equal(truncated, JsonSerializer.Deserialize(json, ContractsJson.Default.LogTruncated));
    }

    [Fact]
    public void object_deleted_round_trips_as_the_event_store_writes_it()
    {
        // Marten stores events as System.Text.Json, camelCase (Hosting/Events/EventStoreSetup).
        var deleted = new ObjectDeleted("vol-1.dev-2", new Tag(3, 17, 9_007_199_254_740_993), 5, 8_000_000_000, 12);
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);

        var json = JsonSerializer.Serialize(deleted, options);
        using var doc = JsonDocument.Parse(json);

        Assert.Equal("vol-1.dev-2", doc.RootElement.GetProperty("objectId").GetString());
        AssertTagObject(doc.RootElement.GetProperty("tag"), deleted.Tag);
        Assert.Equal(5, doc.RootElement.GetProperty("partition").GetInt32());
        Assert.Equal(8_000_000_000, doc.RootElement.GetProperty("offset").GetInt64());
        Assert.Equal(12, doc.RootElement.GetProperty("entriesRetired").GetInt32());
        Assert.Equal(deleted, JsonSerializer.Deserialize<ObjectDeleted>(json, options));
    }

    [Fact]
    public void the_tag_table_event_names_and_stream_are_stable()
    {
        Assert.Equal("tag_recorded", TagTableEventTypes.Recorded);
        Assert.Equal("tag_retired", TagTableEventTypes.Retired);
        Assert.Equal("log_truncated", TagTableEventTypes.Truncated);
        Assert.Equal("fence_passed", TagTableEventTypes.Fence);
        Assert.Equal("object_deleted", TagTableEventTypes.ObjectDeleted);
        Assert.Equal("tagtable-dev-1", TagTableEventTypes.Stream("dev-1"));
    }
}
