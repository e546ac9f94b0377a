DROP SCHEMA IF EXISTS tmdb CASCADE;
CREATE SCHEMA tmdb;
CREATE TABLE tmdb.recon_entries (LIKE tm_local.recon_entries INCLUDING ALL);
CREATE TABLE tmdb.recon_volumes (LIKE tm_local.recon_volumes INCLUDING ALL);
CREATE TABLE tmdb.recon_barriers (LIKE tm_local.recon_barriers INCLUDING ALL);
CREATE TABLE tmdb.recon_fences (LIKE tm_local.recon_fences INCLUDING ALL);
CREATE TABLE tmdb.recon_repaired (LIKE tm_local.recon_repaired INCLUDING ALL);
CREATE TABLE tmdb.recon_requested (LIKE tm_local.recon_requested INCLUDING ALL);
CREATE TABLE tmdb.recon_outbox (LIKE tm_local.recon_outbox INCLUDING ALL);
CREATE OR REPLACE FUNCTION tmdb.barriers_cover(d text, c int, e int, s bigint) RETURNS boolean
LANGUAGE sql STABLE AS $fn$
    SELECT EXISTS (SELECT 1 FROM tmdb.recon_barriers b WHERE b.device_id = d AND b.controller_id = c)
       AND NOT EXISTS (SELECT 1 FROM tmdb.recon_barriers b
                       WHERE b.device_id = d AND b.controller_id = c
                         AND (b.epoch < e OR (b.epoch = e AND b.up_to_seq < s)))
$fn$;
INSERT INTO tmdb.recon_volumes VALUES ('v1', '{d0,d1}'), ('v2', '{d0,d1}');
-- 6000 tags on both mirrors, 300 in flight on d0 only (newer seqs), over 2 volumes
INSERT INTO tmdb.recon_entries (controller_id, epoch, seq, device_id, volume, token, first_block, block_count, extension, recorded_at, owner_epoch)
SELECT 1, 1, s, d, CASE WHEN s % 2 = 0 THEN 'v1' ELSE 'v2' END, s * 2 + (d = 'd1')::int, s % 1000, 1, false, now(), 1
FROM generate_series(1, 6000) s CROSS JOIN (VALUES ('d0'), ('d1')) x(d);
INSERT INTO tmdb.recon_entries (controller_id, epoch, seq, device_id, volume, token, first_block, block_count, extension, recorded_at, owner_epoch)
SELECT 1, 1, s, 'd0', CASE WHEN s % 2 = 0 THEN 'v1' ELSE 'v2' END, s * 2, s % 1000, 1, false, now(), 1
FROM generate_series(6001, 6300) s;
-- barriers passed by both devices up to seq 5990, on 4 partitions each
INSERT INTO tmdb.recon_barriers SELECT d, p, 1, 1, 5990 FROM (VALUES ('d0'), ('d1')) x(d) CROSS JOIN generate_series(0, 3) p;
ANALYZE tmdb.recon_entries; ANALYZE tmdb.recon_barriers; ANALYZE tmdb.recon_volumes;
