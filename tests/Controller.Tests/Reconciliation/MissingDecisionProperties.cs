using System.Text.Json;
using FsCheck.Xunit;
using Npgsql;

namespace TaggedMirror.Controller.Tests.Reconciliation;

/// <summary>
/// The reconciliation's decision over missing writes (M4, flow 5) as the projection's SQL makes it, on the real
/// PostgreSQL, against its definition written here: a write (a tag with an entry that is not a repair's own) is asked
/// to be resynced to a mirror of its volume exactly when that mirror has no entry of it, did not have it repaired, was
/// not asked for it already, and passed barriers covering it — whichever other devices hold entries (a detached
/// mirror's stay behind), and however many mirrors the write is on. Guards the filter that drops tags present on
/// every mirror before the per-mirror probes (docs/design.md, "Decisions paced, entries in runs"): it must change no
/// answer. Each generated case runs in a schema of its own, created in a transaction that is rolled back.
/// </summary>
public sealed class MissingDecisionProperties
{
    private const string Volume = "vol";
    private static readonly string[] Mirrors = ["d0", "d1", "d2"];

    // Entries may also be on a device that is no longer one of the volume's mirrors.
    private static readonly string[] Devices = [.. Mirrors, "d-detached"];

    /// <summary>
    /// One generated tag per element: where it has entries (bits 0–3 of <c>Recorded</c>, over <see cref="Devices"/>),
    /// which of those are a repair's own (<c>RepairEntries</c>), which mirrors had it repaired (<c>Repaired</c>) or were
    /// asked for it already (<c>Requested</c>); <c>Uncovered</c>: mirrors whose barriers are behind every tag.
    /// </summary>
    [Property(MaxTest = 150)]
    public async Task<bool> a_write_is_asked_for_on_exactly_the_mirrors_that_lack_it_and_can_never_get_it(
        (byte Recorded, byte RepairEntries, byte Repaired, byte Requested)[] generated, byte uncovered)
    {
        var tags = generated.Take(12).Select((g, i) => new Case(
            Seq: i + 1,
            Recorded: [.. Devices.Where((_, b) => (g.Recorded & (1 << b)) != 0)],
            RepairEntries: [.. Devices.Where((_, b) => (g.Recorded & g.RepairEntries & (1 << b)) != 0)],
            Repaired: [.. Mirrors.Where((_, b) => (g.Repaired & (1 << b)) != 0)],
            Requested: [.. Mirrors.Where((_, b) => (g.Requested & (1 << b)) != 0)])).ToList();
        var behind = Mirrors.Where((_, b) => (uncovered & (1 << b)) != 0).ToHashSet();

        var expected = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var t in tags.Where(t => t.Recorded.Except(t.RepairEntries).Any()))
        {
            foreach (var d in Mirrors.Where(d => !t.Recorded.Contains(d) && !t.Repaired.Contains(d) && !t.Requested.Contains(d) && !behind.Contains(d)))
                expected.Add($"{t.Seq}->{d}");
        }
        var asked = await DecideAsync(tags, behind);
        return expected.SetEquals(asked) && asked.Count == asked.Distinct(StringComparer.Ordinal).Count();
    }

    /// <summary>
    /// A daemon batch queues each decision with Marten's <c>QueueSqlCommand</c>, which refuses a ';' anywhere in the text
    /// (comments included); the properties here run them in a plain batch, which would not notice.
    /// </summary>
    [Fact]
    public void every_decision_is_one_statement_marten_will_queue()
    {
        var decisions = Controller.Reconciliation.ReconciliationProjection.Decisions("s", TimeSpan.FromSeconds(2));
        Assert.NotEmpty(decisions);
        Assert.All(decisions, d => Assert.DoesNotContain(';', d));
    }

    private static async Task<List<string>> DecideAsync(List<Case> tags, HashSet<string> behind)
    {
        await using var scratch = await ScratchReconciliation.CreateAsync();
        var schema = scratch.Schema;
        await using (var batch = scratch.Batch())
        {
            Add(batch, $"INSERT INTO {schema}.recon_volumes VALUES ($1, $2)", Volume, Mirrors);
            // Every mirror passed barriers of controller 1 on two partitions: past every tag, or behind all of them.
            foreach (var d in Mirrors)
            {
                for (var p = 0; p < 2; p++)
                    Add(batch, $"INSERT INTO {schema}.recon_barriers VALUES ($1, $2, 1, 1, $3)", d, p, behind.Contains(d) ? 0L : 100L);
            }
            foreach (var t in tags)
            {
                foreach (var d in t.Recorded)
                {
                    Add(batch, $"""
                        INSERT INTO {schema}.recon_entries (controller_id, epoch, seq, device_id, volume, token, first_block, block_count, extension, recorded_at, repair)
                        VALUES (1, 1, $1, $2, $3, $4, 0, 1, false, now(), $5)
                        """, (long)t.Seq, d, Volume, t.Seq * 10L + Array.IndexOf(Devices, d), t.RepairEntries.Contains(d));
                }
                foreach (var d in t.Repaired)
                    Add(batch, $"INSERT INTO {schema}.recon_repaired VALUES (1, 1, $1, $2)", (long)t.Seq, d);
                foreach (var d in t.Requested)
                    Add(batch, $"INSERT INTO {schema}.recon_requested (controller_id, epoch, seq, device_id) VALUES (1, 1, $1, $2)", (long)t.Seq, d);
            }
            await batch.ExecuteNonQueryAsync();
        }

        await scratch.DecideAsync();

        var asked = new List<string>();
        await using var outbox = scratch.Command($"SELECT payload::text FROM {schema}.recon_outbox WHERE kind = 'resync'");
        await using var r = await outbox.ExecuteReaderAsync();
        while (await r.ReadAsync())
        {
            using var doc = JsonDocument.Parse(r.GetString(0));
            var tag = doc.RootElement.GetProperty("tag").GetString()!;
            asked.Add($"{tag[(tag.LastIndexOf(':') + 1)..]}->{doc.RootElement.GetProperty("targetDevice").GetString()}");
        }
        return asked;
    }

    private static void Add(NpgsqlBatch batch, string sql, params object[] values) => ScratchReconciliation.Add(batch, sql, values);

    private sealed record Case(int Seq, string[] Recorded, string[] RepairEntries, string[] Repaired, string[] Requested);
}
