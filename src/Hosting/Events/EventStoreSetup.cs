using JasperFx;
using JasperFx.Events;
using Marten;
using Npgsql;
using TaggedMirror.Contracts.TagTable;
using Weasel.Core;

namespace TaggedMirror.Hosting.Events;

/// <summary>
/// Marten's configuration for a cluster's schema, the same in every process that shares it: the event tables live
/// in the cluster's schema beside the product's own tables, streams are named by string (<c>tagtable-d1</c>,
/// <c>volume-v1</c>), appends take Marten's quick path (one function call per stream, versions checked by the
/// server), and events are stored as the product's JSON (camelCase, enums by name) under the names the product has
/// always used, so SQL over <c>mt_events</c> reads <c>data-&gt;&gt;'objectId'</c> and <c>type = 'tag_recorded'</c>.
/// </summary>
public static class EventStoreSetup
{
    /// <summary>Sets the options every process of the cluster uses; callers add their own event types and projections.</summary>
    public static void Configure(StoreOptions o, NpgsqlDataSource dataSource, string schema)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentException.ThrowIfNullOrEmpty(schema);
        o.Connection(dataSource);
        o.DatabaseSchemaName = schema;
        o.Events.DatabaseSchemaName = schema;
        o.Events.StreamIdentity = StreamIdentity.AsString;
        o.Events.AppendMode = EventAppendMode.Quick;
        o.AutoCreateSchemaObjects = AutoCreate.CreateOrUpdate;
        o.UseSystemTextJsonForSerialization(EnumStorage.AsString, Casing.CamelCase);
        // A projection that fails pauses and retries (a missed event would be a missed repair): never skip an event,
        // never dead-letter one, whatever the error.
        foreach (var errors in new[] { o.Projections.Errors, o.Projections.RebuildErrors })
        {
            errors.SkipApplyErrors = false;
            errors.SkipSerializationErrors = false;
            errors.SkipUnknownEvents = false;
        }

        // Reconciliation should follow writes closely (it decides repairs). Who runs the daemon, and restarting it
        // when it stalls, is the controller's (ReconciliationRunner), not Marten's coordinator.
        o.Projections.FastPollingTime = TimeSpan.FromMilliseconds(100);
        o.Projections.SlowPollingTime = TimeSpan.FromMilliseconds(250);
        o.Events.MapEventType<TagRecorded>(TagTableEventTypes.Recorded);
        o.Events.MapEventType<TagRetired>(TagTableEventTypes.Retired);
        o.Events.MapEventType<LogTruncated>(TagTableEventTypes.Truncated);
        o.Events.MapEventType<BarrierPassed>(TagTableEventTypes.Barrier);
        o.Events.MapEventType<TransactionQuarantined>(TagTableEventTypes.Quarantined);
        o.Events.MapEventType<FencePassed>(TagTableEventTypes.Fence);
        o.Events.MapEventType<ObjectDeleted>(TagTableEventTypes.ObjectDeleted);
    }

    /// <summary>
    /// Creates or updates Marten's tables and functions in the schema. Idempotent. Processes starting together (a
    /// controller and its agents) take turns under an advisory lock: Marten's own migration replaces its functions
    /// unguarded, and two at once failed on PostgreSQL's unique index of functions (23505), killing the start.
    /// </summary>
    public static async Task MigrateAsync(NpgsqlDataSource dataSource, string schema, CancellationToken ct)
    {
        var o = new StoreOptions();
        Configure(o, dataSource, schema);
        using var store = new DocumentStore(o);
        var connection = await dataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var disposeConnection = connection.ConfigureAwait(false);
        var take = new NpgsqlCommand("SELECT pg_advisory_lock(hashtextextended($1, 0))", connection);
        await using (take.ConfigureAwait(false))
        {
            take.Parameters.AddWithValue("TaggedMirror.EventStoreSetup:" + schema);
            await take.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        try
        {
            await store.Storage.ApplyAllConfiguredChangesToDatabaseAsync().ConfigureAwait(false);
        }
        finally
        {
            // Session-level: released here, or by the server when this connection closes.
            var release = new NpgsqlCommand("SELECT pg_advisory_unlock_all()", connection);
            await using var disposeRelease = release.ConfigureAwait(false);
            await release.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }
}
