using System.Text.Json;
using FsCheck.Xunit;
using Npgsql;
using TaggedMirror.Controller.Reconciliation;

namespace TaggedMirror.Controller.Tests.Reconciliation;

/// <summary>
/// The reconciliation's retire decision (M4, M5) as the projection's SQL makes it, on the real PostgreSQL, against
/// its definition written here: a tag is matched when every mirror of its volume recorded it or had it repaired,
/// and either its newest entry is older than the grace period (its tokens were lost) or it was repaired (the write
/// path never returns a repaired tag's tokens); then each of its entries not yet retired is asked to retire, once.
/// Tags whose entries are all retired are settled and forgotten, unless a mirror of the volume neither recorded nor
/// had it repaired: its entries were retired because their mirror left the volume, and the write must still reach
/// that mirror (issue #9, detach). Each generated case runs in a schema of its own, created in a transaction that is
/// rolled back.
/// </summary>
public sealed class RetireDecisionProperties
{
    private const string Volume = "vol";
    private static readonly string[] Mirrors = ["d0", "d1", "d2"];

    /// <summary>
    /// One generated tag per element: which mirrors recorded it (bits 0–2 of <c>Recorded</c>), which of the others
    /// had it repaired (bits 0–2 of <c>Repaired</c>), which entries are retired already (bits of <c>Retired</c>), and
    /// whether its entries are older than the grace period. FsCheck shrinks a failure to the fewest tags.
    /// </summary>
    [Property(MaxTest = 150)]
    public Task<bool> every_live_entry_of_a_matched_tag_is_asked_to_retire_and_nothing_else(
        (byte Recorded, byte Repaired, byte Retired, bool Old)[] generated) => CheckAsync(generated, lostDue: true);

    /// <summary>
    /// Between two runs of the paced retirement of lost tokens (<see cref="ReconciliationProjection.RetireLostEvery"/>),
    /// the decisions still retire every repaired tag that is on every mirror, old or not (a volume converges after an
    /// outage only once those are retired), and ask for nothing older than the grace period that was not repaired.
    /// </summary>
    [Property(MaxTest = 100)]
    public Task<bool> between_paced_runs_repaired_tags_are_still_retired_at_once_and_nothing_else(
        (byte Recorded, byte Repaired, byte Retired, bool Old)[] generated) => CheckAsync(generated, lostDue: false);

    private static async Task<bool> CheckAsync((byte Recorded, byte Repaired, byte Retired, bool Old)[] generated, bool lostDue)
    {
        var tags = generated.Take(12).Select((g, i) =>
        {
            var recorded = Mirrors.Where((_, m) => (g.Recorded & (1 << m)) != 0).ToArray();
            if (recorded.Length == 0) recorded = [Mirrors[i % Mirrors.Length]];
            var repaired = Mirrors.Where((d, m) => (g.Repaired & (1 << m)) != 0 && !recorded.Contains(d)).ToArray();
            var retired = recorded.Where(d => (g.Retired & (1 << Array.IndexOf(Mirrors, d))) != 0).ToHashSet();
            return new Case(Seq: i + 1, recorded, repaired, retired, g.Old);
        }).ToList();

        var expected = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var t in tags)
        {
            var everywhere = Mirrors.All(d => t.Recorded.Contains(d) || t.Repaired.Contains(d));
            var matched = everywhere && ((lostDue && t.Old) || t.Repaired.Length > 0);
            if (!matched) continue;
            foreach (var d in t.Recorded.Where(d => !t.Retired.Contains(d)))
                expected.Add($"{d}/{Token(t, d)}");
        }

        // All retired and still wanted somewhere: kept (it was forgotten before detach existed, which lost such a write).
        var kept = tags.Count(t => t.Recorded.All(t.Retired.Contains) && Mirrors.Any(d => !t.Recorded.Contains(d) && !t.Repaired.Contains(d)));
        var (asked, remainingSettled) = await DecideAsync(tags, lostDue);
        return expected.SetEquals(asked) && remainingSettled == kept;
    }

    private static long Token(Case t, string device) => t.Seq * 10 + Array.IndexOf(Mirrors, device);

    private static async Task<(List<string> Asked, long RemainingSettled)> DecideAsync(List<Case> tags, bool lostDue)
    {
        await using var scratch = await ScratchReconciliation.CreateAsync();
        var schema = scratch.Schema;
        await using (var batch = scratch.Batch())
        {
            Add(batch, $"INSERT INTO {schema}.recon_volumes VALUES ($1, $2)", Volume, Mirrors);
            foreach (var tag in tags)
            {
                foreach (var d in tag.Recorded)
                {
                    Add(batch, $"""
                        INSERT INTO {schema}.recon_entries (controller_id, epoch, seq, device_id, volume, token, first_block, block_count, extension, recorded_at, retired)
                        VALUES (1, 1, $1, $2, $3, $4, 0, 1, false, now() - $5::interval, $6)
                        """, (long)tag.Seq, d, Volume, Token(tag, d), tag.Old ? "1 hour" : "0 seconds", tag.Retired.Contains(d));
                }
                foreach (var d in tag.Repaired)
                    Add(batch, $"INSERT INTO {schema}.recon_repaired VALUES (1, 1, $1, $2)", (long)tag.Seq, d);
            }
            await batch.ExecuteNonQueryAsync();
        }

        // A fresh projection's paced statement is due at once; taking its turn first leaves the run without it.
        if (!lostDue) Assert.True(scratch.Projection.RetireLostPacing.Due());
        await scratch.DecideAsync();

        var asked = new List<string>();
        await using (var outbox = scratch.Command($"SELECT payload::text FROM {schema}.recon_outbox WHERE kind = 'retire'"))
        await using (var r = await outbox.ExecuteReaderAsync())
        {
            while (await r.ReadAsync())
            {
                using var doc = JsonDocument.Parse(r.GetString(0));
                foreach (var e in doc.RootElement.GetProperty("entries").EnumerateArray())
                    asked.Add($"{e.GetProperty("deviceId").GetString()}/{e.GetProperty("token").GetInt64()}");
            }
        }
        long settled;
        await using (var left = scratch.Command(
            $"SELECT count(*) FROM (SELECT seq FROM {schema}.recon_entries GROUP BY seq HAVING bool_and(retired)) s"))
        {
            settled = (long)(await left.ExecuteScalarAsync())!;
        }

        // Asked once each: a duplicate would show as a count mismatch against the set.
        return (asked.Count == asked.Distinct(StringComparer.Ordinal).Count() ? asked : [.. asked, "duplicate"], settled);
    }

    private static void Add(NpgsqlBatch batch, string sql, params object[] values) => ScratchReconciliation.Add(batch, sql, values);

    private sealed record Case(int Seq, string[] Recorded, string[] Repaired, HashSet<string> Retired, bool Old);
}
