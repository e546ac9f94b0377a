using FsCheck;
using FsCheck.Xunit;
using Npgsql;
using TaggedMirror.Contracts;
using TaggedMirror.Controller.Reconciliation;

namespace TaggedMirror.Controller.Tests.Reconciliation;

/// <summary>
/// The coverage rule as the reconciliation projection's SQL applies it, on the real PostgreSQL
/// (<c>TM_PG</c> overrides the connection string), against its definition written here in C#: a mirror that lacks
/// a tag provably never gets it once, on every partition it has a barrier row of the tag's controller for, it
/// passed a barrier that covers the tag, where barrier (controller, epoch, upToSeq) covers tag (controller, epoch,
/// seq) when it is not below it in <see cref="Tag"/> order. Each generated case (a tag, and the barrier rows of the
/// mirror that lacks it) runs in a schema of its own created in a transaction that is rolled back, so cases do not
/// see one another and nothing is left behind, whatever happens to the run.
/// </summary>
public sealed class CoverageRuleProperties
{
    private const int TagController = 1;
    private const string Volume = "vol";
    private const string Holder = "d-holder";
    private const string Lacking = "d-lacking";

    /// <summary>
    /// Small epochs and sequences, a few partitions and two controllers, so barriers just below, at and above the
    /// tag, missing partitions and other controllers' barriers all come up; FsCheck shrinks a failure to the
    /// fewest, smallest barrier rows.
    /// </summary>
    [Property(MaxTest = 200)]
    public async Task<bool> a_mirror_lacking_a_tag_is_asked_to_resync_exactly_when_its_barriers_cover_the_tag(
        byte tagEpoch, byte tagSeq, (byte Partition, bool OtherController, byte Epoch, byte UpToSeq)[] barrierRows)
    {
        var tag = new Tag(TagController, tagEpoch % 4, tagSeq % 8);
        // One row per (partition, controller), as the table's key keeps it; the first generated one wins.
        var barriers = barrierRows
            .Select(b => (Partition: b.Partition % 3, Controller: b.OtherController ? TagController + 1 : TagController, Epoch: b.Epoch % 4, UpToSeq: (long)(b.UpToSeq % 8)))
            .DistinctBy(b => (b.Partition, b.Controller))
            .ToList();

        var ofController = barriers.Where(b => b.Controller == tag.ControllerId).ToList();
        var covered = ofController.Count > 0 && ofController.All(b => new Tag(b.Controller, b.Epoch, b.UpToSeq).CompareTo(tag) >= 0);

        return covered == await ResyncRequestedAsync(tag, barriers);
    }

    /// <summary>Runs the projection's decisions over one case and reports whether it asked to resync the tag to the lacking mirror.</summary>
    private async Task<bool> ResyncRequestedAsync(Tag tag, List<(int Partition, int Controller, int Epoch, long UpToSeq)> barriers)
    {
        await using var scratch = await ScratchReconciliation.CreateAsync();
        var schema = scratch.Schema;
        var batch = scratch.Batch();
        Add(batch, $"INSERT INTO {schema}.recon_volumes VALUES ($1, $2)", Volume, new[] { Holder, Lacking });
        Add(batch, $"""
            INSERT INTO {schema}.recon_entries (controller_id, epoch, seq, device_id, volume, token, first_block, block_count, extension, recorded_at)
            VALUES ($1, $2, $3, $4, $5, 1, 0, 1, false, now())
            """, tag.ControllerId, tag.Epoch, tag.Seq, Holder, Volume);
        foreach (var b in barriers)
            Add(batch, $"INSERT INTO {schema}.recon_barriers VALUES ($1, $2, $3, $4, $5)", Lacking, b.Partition, b.Controller, b.Epoch, b.UpToSeq);
        await batch.ExecuteNonQueryAsync();
        await batch.DisposeAsync();

        await scratch.DecideAsync();

        await using var requested = scratch.Command(
            $"SELECT count(*) FROM {schema}.recon_requested WHERE (controller_id, epoch, seq, device_id) = ($1, $2, $3, $4)");
        requested.Parameters.Add(new() { Value = tag.ControllerId });
        requested.Parameters.Add(new() { Value = tag.Epoch });
        requested.Parameters.Add(new() { Value = tag.Seq });
        requested.Parameters.Add(new() { Value = Lacking });
        return (long)(await requested.ExecuteScalarAsync())! > 0;
    }

    private static void Add(NpgsqlBatch batch, string sql, params object[] values) => ScratchReconciliation.Add(batch, sql, values);
}
