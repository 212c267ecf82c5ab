DO $migration$
DECLARE
    s text := (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'pgevents_event'::regclass);
BEGIN
    -- The frame is written so PostgreSQL can inline it into the query that calls it: no SET
    -- (a function with one is called through the function manager, and a SQL function called
    -- that way is planned again at every execution of the calling query), and every name
    -- qualified, so a caller's search_path cannot redirect it.
    EXECUTE format($sql$
CREATE OR REPLACE FUNCTION %1$I.pgevents_frame(e %1$I.pgevents_event) RETURNS text
LANGUAGE sql STABLE AS $pgevents$
    SELECT pg_catalog.jsonb_build_object(
        'type', 'event', 'channel', e.channel, 'id', e.id, 'op', e.op,
        'schema', e.schema_name, 'table', e.table_name, 'row', e."row", 'old', e.old,
        'at', pg_catalog.to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::pg_catalog.text
$pgevents$
$sql$, s);
    -- One look at the pending index per call: the first statement finds the oldest pending
    -- event and, only if there is one, locks the cursor (a call that finds nothing writes
    -- nothing); the second, whose snapshot is taken after the lock, reads from that event on.
    -- A second sequencer that waited for the lock starts after the first one's positions;
    -- an event with a smaller seq that committed meanwhile is positioned by the next call.
    -- Positioned rows are found again by their ctid, never through the pending index: a plan
    -- made while the statistics said nothing was pending would otherwise walk every pending
    -- row for each one it positions (the check that the row is still pending is written so
    -- that it does not match that index's predicate).
    EXECUTE format($sql$
CREATE OR REPLACE FUNCTION %1$I.pgevents_assign(batch integer, published bigint)
RETURNS TABLE (event_id bigint, prev_event_id bigint, event_channel text, event_frame text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
AS $pgevents$
DECLARE
    last_id bigint;
    first_seq bigint;
    n integer := 0;
BEGIN
    SELECT c.value, p.seq INTO last_id, first_seq
      FROM %1$I.pgevents_cursor c,
           (SELECT e.seq FROM %1$I.pgevents_event e WHERE e.id IS NULL ORDER BY e.seq LIMIT 1) p
     WHERE c.name = 'assigned'
       FOR UPDATE OF c;
    IF first_seq IS NOT NULL THEN
        RETURN QUERY
        WITH pending AS (
            SELECT p.ctid AS row_at, p.channel, last_id + row_number() OVER (ORDER BY p.seq) AS new_id
              FROM (SELECT e.ctid, e.seq, e.channel FROM %1$I.pgevents_event e
                     WHERE e.id IS NULL AND e.seq >= first_seq ORDER BY e.seq LIMIT batch) p
        ), linked AS (
            SELECT k.row_at, k.new_id,
                   coalesce(lag(k.new_id) OVER (PARTITION BY k.channel ORDER BY k.new_id),
                            (SELECT max(x.id) FROM %1$I.pgevents_event x
                             WHERE x.channel = k.channel AND x.id IS NOT NULL)) AS prev
              FROM pending k
        ), done AS (
            UPDATE %1$I.pgevents_event e SET id = l.new_id, prev_id = l.prev
              FROM linked l WHERE e.ctid = l.row_at AND coalesce(e.id, 0) = 0
            RETURNING e.*
        )
        SELECT d.id, d.prev_id, d.channel, %1$I.pgevents_frame(d::%1$I.pgevents_event) FROM done d ORDER BY d.id;
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    UPDATE %1$I.pgevents_cursor
       SET value = CASE name WHEN 'assigned' THEN last_id + n ELSE published END
     WHERE name IN ('assigned', 'published')
       AND CASE name WHEN 'assigned' THEN n > 0 ELSE value < published END;
END
$pgevents$
$sql$, s);
END
$migration$;
