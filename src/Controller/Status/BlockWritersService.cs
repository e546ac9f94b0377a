using Npgsql;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Controller.Status;

/// <summary>
/// Who last wrote a block: each mirror's newest row for it in the devices' block-writer table (written by the agents
/// with each applied batch), and the newest write among them (docs/design.md, "Who wrote a block").
/// </summary>
internal sealed class BlockWritersService(EventStreams store)
{
    public async Task<BlockWriters> GetAsync(Volume v, long block, CancellationToken ct)
    {
        var found = new (Mirror Mirror, Row? Row)[v.Mirrors.Length];
        for (var i = 0; i < v.Mirrors.Length; i++)
            found[i] = (v.Mirrors[i], await NewestAsync(v.Mirrors[i], block, ct));

        // The newest write (a repair is a copy of one, not a write of its own) any mirror applied, by owner epoch and
        // then tag: one owner's writes are tagged in the order each mirror's log has them.
        var last = found.Where(f => f.Row is { Kind: not TransactionKind.Repair })
            .Select(f => f.Row!.Value)
            .OrderByDescending(r => r.OwnerEpoch).ThenByDescending(r => r.Tag)
            .Select(r => (Row?)r).FirstOrDefault();
        BlockWrite? lastWrite = null;
        if (last is { } l)
        {
            var same = found.Where(f => f.Row is { } r && r.Tag == l.Tag).ToList();
            lastWrite = Describe(l, [.. same.Select(f => f.Mirror.DeviceId)]) with { AppliedAt = same.Min(f => f.Row!.Value.AppliedAt) };
        }
        var mirrors = found.Select(f => new MirrorBlockWrite(f.Mirror.DeviceId, f.Mirror.State.ToString(), Holds(f.Row, last), f.Row is { } r ? Describe(r, []) : null));
        return new BlockWriters(v.Name, block, lastWrite, [.. mirrors]);
    }

    private static string Holds(Row? row, Row? last) => row switch
    {
        null => "none",
        { } r when last is { } l && r.Tag == l.Tag => "last-write",
        _ when last is null => "copy",   // only repairs recorded: copies of writes no mirror records any more
        { Kind: TransactionKind.Repair } r when Newer(r, last.Value) => "copy",
        _ => "older",
    };

    private static bool Newer(Row a, Row b) => a.OwnerEpoch != b.OwnerEpoch ? a.OwnerEpoch > b.OwnerEpoch : a.Tag.CompareTo(b.Tag) > 0;

    private static BlockWrite Describe(Row r, string[] appliedBy) => new(
        r.Tag.ToString(), r.Kind.ToString().ToLowerInvariant(), r.Principal, r.FirstBlock, r.BlockCount, r.OwnerEpoch, r.AppliedAt, appliedBy);

    /// <summary>
    /// The mirror's device's last applied write covering the block (its log's order: the highest offset). Only rows
    /// starting at most the object's longest write before the block can cover it (<c>block_write_spans</c>): a narrow
    /// range of the device's <c>block_writes_cover</c> index, whatever the table's size (the object id compared in the C
    /// collation, as that index holds it, so no other index can be taken instead).
    /// </summary>
    private async Task<Row?> NewestAsync(Mirror m, long block, CancellationToken ct)
    {
        await using var cmd = store.DataSource.CreateCommand($"""
            WITH candidates AS MATERIALIZED (
                SELECT w.* FROM {store.Schema}.block_writes w, {store.Schema}.block_write_spans s
                WHERE s.device_id = @d AND s.object_id = @o AND w.device_id = @d AND w.object_id COLLATE "C" = @o
                  AND w.first_block <= @b AND w.first_block > @b - s.max_blocks AND w.first_block + w.block_count > @b)
            SELECT controller_id, epoch, seq, kind, owner_epoch, principal, first_block, block_count, applied_at
            FROM candidates ORDER BY partition DESC, topic_offset DESC LIMIT 1
            """);
        cmd.Parameters.AddWithValue("d", m.DeviceId);
        cmd.Parameters.AddWithValue("o", m.ObjectId);
        cmd.Parameters.AddWithValue("b", block);
        try
        {
            await using var r = await cmd.ExecuteReaderAsync(ct);
            if (!await r.ReadAsync(ct)) return null;
            return new Row(new Tag(r.GetInt32(0), r.GetInt32(1), r.GetInt64(2)), (TransactionKind)r.GetInt16(3), r.GetInt64(4),
                r.IsDBNull(5) ? null : r.GetString(5), r.GetInt64(6), r.GetInt32(7), r.GetFieldValue<DateTimeOffset>(8));
        }
        catch (PostgresException ex) when (ForeignTables.IsMissing(ex))
        {
            return null; // no device agent has started yet
        }
    }

    private readonly record struct Row(Tag Tag, TransactionKind Kind, long OwnerEpoch, string? Principal, long FirstBlock, int BlockCount, DateTimeOffset AppliedAt);
}
