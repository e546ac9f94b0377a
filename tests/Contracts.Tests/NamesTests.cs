namespace TaggedMirror.Contracts.Tests;

public sealed class NamesTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("0")]
    [InlineData("vol-1")]
    [InlineData("dev-a-2")]
    [InlineData("9lives")]
    [InlineData("a-")]
    [InlineData("abcdefghijklmnopqrstuvwxyz0123456789-abcdefghijk")]
    public void valid_names_are_accepted(string name)
    {
        Assert.True(Names.IsValid(name), name);
    }

    [Fact]
    public void a_name_of_exactly_48_characters_is_accepted()
    {
        Assert.True(Names.IsValid(new string('a', 48)));
    }

    [Fact]
    public void a_name_of_49_characters_is_rejected()
    {
        Assert.False(Names.IsValid(new string('a', 49)));
        Assert.False(Names.IsValid("x" + new string('-', 48)));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("Vol-1")]
    [InlineData("VOL")]
    [InlineData("vol 1")]
    [InlineData(" vol")]
    [InlineData("vol ")]
    [InlineData("-vol")]
    [InlineData("-")]
    [InlineData("vol.dev")]
    [InlineData("vol_1")]
    [InlineData("vol/1")]
    [InlineData("völ")]
    [InlineData("vol\t")]
    [InlineData("vol-1\n")]
    public void invalid_names_are_rejected(string? name)
    {
        Assert.False(Names.IsValid(name), name);
    }

    [Fact]
    public void the_object_id_is_volume_dot_device()
    {
        Assert.Equal("vol-1.dev-2", Names.ObjectId("vol-1", "dev-2"));
    }

    [Theory]
    [InlineData("vol-1", "dev-2")]
    [InlineData("a", "b")]
    [InlineData("0", "0")]
    [InlineData("data-volume-with-a-long-name-0123456789-abcdefgh", "device-with-a-long-name-0123456789-abcdefghijkl")]
    public void volume_of_object_recovers_the_volume_from_an_object_id(string volume, string device)
    {
        Assert.Equal(volume, Names.VolumeOfObject(Names.ObjectId(volume, device)));
    }

    [Fact]
    public void volume_of_object_returns_a_dotless_id_unchanged()
    {
        Assert.Equal("vol-1", Names.VolumeOfObject("vol-1"));
    }

    [Fact]
    public void device_topics_are_prefixed_per_device()
    {
        Assert.Equal("tm.device.", Topics.DevicePrefix);
        Assert.Equal("tm.device.dev-1", Topics.Device("dev-1"));
        Assert.StartsWith(Topics.DevicePrefix, Topics.Device("dev-2"), StringComparison.Ordinal);
        Assert.NotEqual(Topics.Device("dev-1"), Topics.Device("dev-2"));
    }

    [Fact]
    public void dead_letter_topics_are_per_device_and_not_device_topics()
    {
        Assert.Equal("tm.deadletter.dev-1", Topics.DeadLetter("dev-1"));
        Assert.NotEqual(Topics.DeadLetter("dev-1"), Topics.DeadLetter("dev-2"));
        Assert.False(Topics.DeadLetter("dev-1").StartsWith(Topics.DevicePrefix, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("tm", true)]
    [InlineData("tm_local", true)]
    [InlineData("_x9", true)]
    [InlineData(null, false)]
    [InlineData("", false)]
    [InlineData("1tm", false)] // a leading digit needs quotes in SQL
    [InlineData("tm-1", false)]
    [InlineData("Tm", false)]
    [InlineData("pg_tm", false)]
    [InlineData("tm;drop", false)]
    public void a_schema_name_is_a_plain_postgresql_name(string? schema, bool valid)
    {
        Assert.Equal(valid, Names.IsValidSchema(schema));
    }

    [Fact]
    public void a_schema_name_is_at_most_63_characters()
    {
        Assert.True(Names.IsValidSchema(new string('t', 63)));
        Assert.False(Names.IsValidSchema(new string('t', 64)));
    }
}
