namespace TaggedMirror.Controller.Intake;

/// <summary>
/// The intake's tables (owned by the controllers' intake, created with <see cref="ControllerSchema"/>):
/// request ids and their outcomes, which key holds each producer id, each volume's position in the requests topic, and quarantined requests.
/// </summary>
internal static class IntakeSchema
{
    public static string Ddl(string schema) => $"""
        -- One row per producer request ever seen: 'pending' from before its write is sent until its outcome is
        -- recorded, then 'answered' with the outcome every copy of the request is answered with. partition/offset: the
        -- message that first carried it.
        CREATE TABLE IF NOT EXISTS {schema}.intake_requests (
            producer_id text NOT NULL,
            request_id text NOT NULL,
            volume text NOT NULL,
            state text NOT NULL,
            outcome jsonb,
            partition int NOT NULL,
            "offset" bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (producer_id, request_id));
        -- The few requests under way, read by the event store's pruning (their recorded copies are kept).
        {Hosting.SchemaChanges.IndexIfMissing(schema, "intake_requests_pending", $"{schema}.intake_requests (producer_id, request_id) WHERE state = 'pending'")}
        -- Answered requests by age, for their expiry after Controller:IntakeRequestRetention (IntakeRetention).
        {Hosting.SchemaChanges.IndexIfMissing(schema, "intake_requests_answered", $"{schema}.intake_requests (updated_at) WHERE state = 'answered'")}
        -- Per volume and partition of the requests topic: every message below next_offset was answered (or was not
        -- this volume's). Written with the outcomes it covers, never backwards.
        CREATE TABLE IF NOT EXISTS {schema}.intake_positions (
            volume text NOT NULL,
            partition int NOT NULL,
            next_offset bigint NOT NULL,
            PRIMARY KEY (volume, partition));
        -- Which API key holds each producer id: the first key whose request named it, until that key is revoked (then
        -- the next live key to name it). Only the holder's requests are answered and recorded under the id.
        CREATE TABLE IF NOT EXISTS {schema}.intake_producers (
            producer_id text PRIMARY KEY,
            key_id text NOT NULL,
            claimed_at timestamptz NOT NULL DEFAULT now());
        -- Requests refused as malformed, out of range or for no volume, kept as they came (the value up to 1 MiB).
        -- The first controller to insert a message's row is the one that answers it.
        CREATE TABLE IF NOT EXISTS {schema}.intake_quarantine (
            partition int NOT NULL,
            "offset" bigint NOT NULL,
            volume text,
            producer_id text,
            request_id text,
            reason text NOT NULL,
            key bytea,
            envelope bytea,
            value bytea,
            quarantined_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (partition, "offset"));
        """;
}
