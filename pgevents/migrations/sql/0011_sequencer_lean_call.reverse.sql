DO $migration$
DECLARE
    s text := (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'pgevents_event'::regclass);
BEGIN
    -- Back to 0004's frame (its own search_path, called rather than inlined) and 0009's sequencer.
    EXECUTE format($sql$
CREATE OR REPLACE FUNCTION %1$I.pgevents_frame(e %1$I.pgevents_event) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $pgevents$
    SELECT jsonb_build_object(
        'type', 'event', 'channel', e.channel, 'id', e.id, 'op', e.op,
        'schema', e.schema_name, 'table', e.table_name, 'row', e."row", 'old', e.old,
        'at', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text
$pgevents$
$sql$, s);
    EXECUTE format($sql$
CREATE OR REPLACE FUNCTION %1$I.pgevents_assign(batch integer, published bigint)
RETURNS TABLE (event_id bigint, prev_event_id bigint, event_channel text, event_frame text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
AS $pgevents$
DECLARE
    last_id bigint;
    seqs bigint[];
    channels text[];
BEGIN
    IF NOT EXISTS (SELECT FROM %1$I.pgevents_event WHERE id IS NULL) THEN
        UPDATE %1$I.pgevents_cursor SET value = published WHERE name = 'published' AND value < published;
        RETURN;
    END IF;
    -- The cursor is locked before the pending events are read (a statement of its own, so a
    -- snapshot taken after the lock): a second sequencer that waited here sees the first one's
    -- positions.
    SELECT value INTO last_id FROM %1$I.pgevents_cursor WHERE name = 'assigned' FOR UPDATE;
    SELECT array_agg(p.seq ORDER BY p.seq), array_agg(p.channel ORDER BY p.seq) INTO seqs, channels
      FROM (SELECT e.seq, e.channel FROM %1$I.pgevents_event e WHERE e.id IS NULL ORDER BY e.seq LIMIT batch) p;
    IF seqs IS NULL THEN  -- another sequencer took them while this one waited for the lock
        UPDATE %1$I.pgevents_cursor SET value = published WHERE name = 'published' AND value < published;
        RETURN;
    END IF;
    RETURN QUERY
    WITH linked AS (
        SELECT u.seq, last_id + u.n AS new_id,
               coalesce(lag(last_id + u.n) OVER (PARTITION BY u.channel ORDER BY u.n),
                        (SELECT max(x.id) FROM %1$I.pgevents_event x
                         WHERE x.channel = u.channel AND x.id IS NOT NULL)) AS prev
        FROM unnest(seqs, channels) WITH ORDINALITY AS u(seq, channel, n)
    ), done AS (
        UPDATE %1$I.pgevents_event e SET id = l.new_id, prev_id = l.prev
        FROM linked l WHERE e.seq = l.seq AND e.id IS NULL  -- found through the pending index
        RETURNING e.*
    )
    SELECT d.id, d.prev_id, d.channel, %1$I.pgevents_frame(d::%1$I.pgevents_event) FROM done d ORDER BY d.id;
    UPDATE %1$I.pgevents_cursor
       SET value = CASE name WHEN 'assigned' THEN last_id + cardinality(seqs) ELSE greatest(value, published) END
     WHERE name IN ('assigned', 'published');
END
$pgevents$
$sql$, s);
END
$migration$;
