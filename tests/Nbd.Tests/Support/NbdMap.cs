using System.Text.Json;

namespace TaggedMirror.Nbd.Tests.Support;

/// <summary>An export's map as nbdinfo reads it (BLOCK_STATUS through a real client), and the map a set of data ranges should give.</summary>
public static class NbdMap
{
    /// <summary>Data, in nbdinfo's <c>type</c>.</summary>
    public const int Data = 0;

    /// <summary>A hole that reads as zeros (NBD_STATE_HOLE | NBD_STATE_ZERO), in nbdinfo's <c>type</c>.</summary>
    public const int HoleZero = 3;

    /// <summary><c>nbdinfo --map --json</c> of <paramref name="uri"/>: (offset, length, type) in order.</summary>
    public static async Task<List<(long Offset, long Length, int Type)>> OfAsync(string uri)
    {
        using var map = JsonDocument.Parse(await Tool.CheckAsync("nbdinfo", "--map", "--json", uri));
        return [.. map.RootElement.EnumerateArray().Select(e => (e.GetProperty("offset").GetInt64(), e.GetProperty("length").GetInt64(), e.GetProperty("type").GetInt32()))];
    }

    /// <summary>
    /// The map of an export of <paramref name="size"/> bytes whose data is <paramref name="data"/> (each [offset, length],
    /// in order, none touching the next): data and holes alternating, as nbdinfo merges them.
    /// </summary>
    public static List<(long Offset, long Length, int Type)> Expected(long[][] data, long size)
    {
        var extents = new List<(long, long, int)>();
        long at = 0;
        foreach (var d in data)
        {
            if (d[0] > at) extents.Add((at, d[0] - at, HoleZero));
            extents.Add((d[0], d[1], Data));
            at = d[0] + d[1];
        }
        if (at < size) extents.Add((at, size - at, HoleZero));
        return extents;
    }
}
