using TaggedMirror.Hosting.Events;

namespace TaggedMirror.Hosting.Tests.Events;

/// <summary>Marten's schema migration as the processes of a cluster run it: several at once, on one schema.</summary>
public sealed class EventStoreSetupTests : PgTestBase
{
    [Fact]
    public async Task processes_starting_together_all_migrate_a_fresh_schema()
    {
        // A controller and its agents start together on a schema Marten has not seen: without the migration lock
        // two of them replaced Marten's functions at once and one failed with 23505 (the controller exited).
        var fresh = Schema + "_fresh";
        try
        {
            await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(() => EventStoreSetup.MigrateAsync(DataSource, fresh, Ct), Ct)));
            Assert.Equal(1, await ScalarAsync($"SELECT count(*) FROM pg_tables WHERE schemaname = '{fresh}' AND tablename = 'mt_events'"));

            // And again, now that it exists: nothing to do, nothing fails.
            await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(() => EventStoreSetup.MigrateAsync(DataSource, fresh, Ct), Ct)));
        }
        finally
        {
            await ExecuteAsync($"DROP SCHEMA IF EXISTS {fresh} CASCADE");
        }
    }
}
