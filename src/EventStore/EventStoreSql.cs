namespace TaggedMirror.EventStore;

/// <summary>SQL texts for one schema, built once so prepared statements are reused by text.</summary>
internal sealed class EventStoreSql
{
    public EventStoreSql(string schema)
    {
        var s = schema;
        Schema = s;
        MigrationLockKey = "TaggedMirror.EventStore:" + s;

        // The identity sequence keeps CACHE 1: ProjectionDaemon relies on "seq <= last_value was drawn before
        // last_value was read", which per-session caching of sequence values would break.
        Migrate = $"""
            CREATE SCHEMA IF NOT EXISTS {s};
            CREATE TABLE IF NOT EXISTS {s}.streams (
                id text PRIMARY KEY,
                version bigint NOT NULL,
                created timestamptz NOT NULL DEFAULT now(),
                updated timestamptz NOT NULL DEFAULT now());
            CREATE TABLE IF NOT EXISTS {s}.events (
                seq bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
                stream_id text NOT NULL,
                version bigint NOT NULL,
                type text NOT NULL,
                data jsonb NOT NULL,
                tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
                ts timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT events_stream_version_key UNIQUE (stream_id, version));
            CREATE TABLE IF NOT EXISTS {s}.projection_checkpoints (
                name text PRIMARY KEY,
                last_seq bigint NOT NULL DEFAULT 0,
                updated timestamptz NOT NULL DEFAULT now());
            """;

        // Each append is ONE statement: the stream row is claimed first (CTE), then all events are inserted from
        // unnest'ed arrays. The events insert consumes the CTE's row, so the stream write (which assigns the
        // transaction id) always happens before any seq is drawn; ProjectionDaemon depends on that ordering.
        // Zero rows back means the expected version did not hold.
        const string insertTail = """
            INSERT INTO {0}.events (stream_id, version, type, data)
            SELECT $1, s.version - $2 + u.ord, u.type, u.data
            FROM s, unnest($3::text[], $4::jsonb[]) WITH ORDINALITY AS u(type, data, ord)
            ORDER BY u.ord
            RETURNING seq, version, ts
            """;
        var tail = string.Format(System.Globalization.CultureInfo.InvariantCulture, insertTail, s);

        // $1 id, $2 count, $3 types, $4 datas, $5 expected
        AppendExpected = $"""
            WITH s AS (
                UPDATE {s}.streams SET version = version + $2, updated = now()
                WHERE id = $1 AND version = $5
                RETURNING version)
            {tail}
            """;
        AppendNoStream = $"""
            WITH s AS (
                INSERT INTO {s}.streams (id, version) VALUES ($1, $2)
                ON CONFLICT (id) DO NOTHING
                RETURNING version)
            {tail}
            """;
        AppendAny = $"""
            WITH s AS (
                INSERT INTO {s}.streams (id, version) VALUES ($1, $2)
                ON CONFLICT (id) DO UPDATE SET version = {s}.streams.version + EXCLUDED.version, updated = now()
                RETURNING version)
            {tail}
            """;

        StreamVersion = $"SELECT version FROM {s}.streams WHERE id = $1";
        ReadStream = $"""
            SELECT seq, stream_id, version, type, data, ts FROM {s}.events
            WHERE stream_id = $1 AND version >= $2 ORDER BY version
            """;
        ReadRange = $"""
            SELECT seq, stream_id, version, type, data, ts FROM {s}.events
            WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3
            """;
        EnsureCheckpoint = $"INSERT INTO {s}.projection_checkpoints (name, last_seq) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING";
        ReadCheckpoint = $"SELECT last_seq FROM {s}.projection_checkpoints WHERE name = $1";
        WriteCheckpoint = $"""
            INSERT INTO {s}.projection_checkpoints (name, last_seq) VALUES ($1, $2)
            ON CONFLICT (name) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated = now()
            """;
        SequenceLastValue = $"SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('{s}.events', 'seq')::regclass), 0)";
    }

    public string Schema { get; }

    public string MigrationLockKey { get; }

    public string Migrate { get; }

    public string AppendExpected { get; }

    public string AppendNoStream { get; }

    public string AppendAny { get; }

    public string StreamVersion { get; }

    public string ReadStream { get; }

    public string ReadRange { get; }

    public string EnsureCheckpoint { get; }

    public string ReadCheckpoint { get; }

    public string WriteCheckpoint { get; }

    public string SequenceLastValue { get; }
}
