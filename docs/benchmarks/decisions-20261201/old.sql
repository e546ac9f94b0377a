EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY ON)
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
SELECT count(*) FROM missing;
