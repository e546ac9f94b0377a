BEGIN;
EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON)
            -- Missing and provably never coming: the target passed, on every partition it has a barrier row for,
            -- a barrier of the tag's controller covering the tag (a later epoch, or the same epoch and a seq at or past
            -- it), or it passed the fence of a later owner of the volume (in the partition all of the object's writes
            -- go to: an older owner's write it has no entry for by then is refused if it ever comes).
            WITH tags AS (
                SELECT controller_id, epoch, seq, volume, min(device_id) AS source, min(first_block) AS first_block,
                       min(block_count) AS block_count, bool_or(extension) AS extension, min(trace_parent) AS trace_parent,
                       max(owner_epoch) AS owner_epoch
                FROM tmdb.recon_entries WHERE NOT repair GROUP BY 1, 2, 3, 4)
            , missing AS (
                SELECT t.*, d.device AS target
                FROM tags t JOIN tmdb.recon_volumes v ON v.volume = t.volume CROSS JOIN LATERAL unnest(v.devices) AS d(device)
                WHERE NOT EXISTS (SELECT 1 FROM tmdb.recon_entries e
                                  WHERE (e.controller_id, e.epoch, e.seq, e.device_id) = (t.controller_id, t.epoch, t.seq, d.device))
                  AND NOT EXISTS (SELECT 1 FROM tmdb.recon_repaired r
                                  WHERE (r.controller_id, r.epoch, r.seq, r.device_id) = (t.controller_id, t.epoch, t.seq, d.device))
                  AND NOT EXISTS (SELECT 1 FROM tmdb.recon_requested q
                                  WHERE (q.controller_id, q.epoch, q.seq, q.device_id) = (t.controller_id, t.epoch, t.seq, d.device))
                  AND (tmdb.barriers_cover(d.device, t.controller_id, t.epoch, t.seq)
                       OR EXISTS (SELECT 1 FROM tmdb.recon_fences f
                                  WHERE f.device_id = d.device AND f.volume = t.volume AND f.owner_epoch > t.owner_epoch)))
            , requested AS (
                INSERT INTO tmdb.recon_requested (controller_id, epoch, seq, device_id)
                SELECT controller_id, epoch, seq, target FROM missing RETURNING 1)
            INSERT INTO tmdb.recon_outbox (kind, payload)
            SELECT 'resync', jsonb_build_object(
                'volume', volume, 'tag', controller_id || ':' || epoch || ':' || seq, 'firstBlock', first_block,
                'blockCount', block_count, 'extension', extension, 'sourceDevice', source, 'targetDevice', target,
                'traceParent', trace_parent)
            FROM missing
            ;
ROLLBACK;
