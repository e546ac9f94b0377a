BEGIN; SET LOCAL jit = off;
EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON)
            -- On every mirror (recorded or repaired) but still live past the grace period, or repaired (the
            -- write path never returns a repaired tag's tokens): have the owner send the tokens.
            WITH tags AS (
                SELECT e.controller_id, e.epoch, e.seq, e.volume, max(e.recorded_at) AS last_recorded,
                       array_agg(e.device_id) AS devices
                FROM tmdb.recon_entries e GROUP BY 1, 2, 3, 4)
            , matched AS (
                SELECT t.* FROM tags t JOIN tmdb.recon_volumes v ON v.volume = t.volume
                -- A repair is matched once applied: it was meant for its target alone.
                WHERE (EXISTS (SELECT 1 FROM tmdb.recon_entries x
                               WHERE (x.controller_id, x.epoch, x.seq) = (t.controller_id, t.epoch, t.seq) AND x.repair)
                       AND t.last_recorded < now() - interval '2000 milliseconds')
                OR (NOT EXISTS (
                    SELECT 1 FROM unnest(v.devices) AS d(device)
                    WHERE d.device <> ALL (t.devices)
                      AND NOT EXISTS (SELECT 1 FROM tmdb.recon_repaired r
                                      WHERE (r.controller_id, r.epoch, r.seq, r.device_id) = (t.controller_id, t.epoch, t.seq, d.device)))
                  AND (t.last_recorded < now() - interval '2000 milliseconds'
                       OR EXISTS (SELECT 1 FROM tmdb.recon_repaired r WHERE (r.controller_id, r.epoch, r.seq) = (t.controller_id, t.epoch, t.seq)))))
            -- Asked again while not retired: the request is lost when no controller owned the volume as it
            -- arrived, or the owner died holding the tokens, and the entry would stay live (and be acknowledged
            -- again every few seconds) forever.
            , marked AS (
                UPDATE tmdb.recon_entries e SET retire_requested = true, retire_requested_at = now() FROM matched m
                WHERE (e.controller_id, e.epoch, e.seq) = (m.controller_id, m.epoch, m.seq) AND NOT e.retired
                  AND (NOT e.retire_requested OR coalesce(e.retire_requested_at, '-infinity') < now() - interval '20 seconds')
                RETURNING e.volume, e.device_id, e.token, e.controller_id || ':' || e.epoch || ':' || e.seq AS tag)
            INSERT INTO tmdb.recon_outbox (kind, payload)
            SELECT 'retire', jsonb_build_object('volume', volume,
                   'entries', jsonb_agg(jsonb_build_object('deviceId', device_id, 'token', token, 'tag', tag)))
            FROM marked GROUP BY volume
            ;
ROLLBACK;
