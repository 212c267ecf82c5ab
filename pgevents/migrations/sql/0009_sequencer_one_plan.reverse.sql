DO $migration$
DECLARE
    s text := (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'pgevents_event'::regclass);
BEGIN
    -- Back to 0008's sequencer: custom plans, planned at every call.
    EXECUTE format($sql$
CREATE OR REPLACE FUNCTION %1$I.pgevents_assign(batch integer, published bigint)
RETURNS TABLE (event_id bigint, prev_event_id bigint, event_channel text, event_frame text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan
AS $pgevents$
DECLARE
    last_id bigint;
    n bigint;
BEGIN
    UPDATE %1$I.pgevents_cursor SET value = greatest(value, published) WHERE name = 'published';
    SELECT value INTO last_id FROM %1$I.pgevents_cursor WHERE name = 'assigned' FOR UPDATE;
    RETURN QUERY
    WITH pending AS (
        SELECT s.seq, s.channel, last_id + row_number() OVER (ORDER BY s.seq) AS new_id
        FROM (SELECT p.seq, p.channel FROM %1$I.pgevents_event p
              WHERE p.id IS NULL ORDER BY p.seq LIMIT batch) s
    ), linked AS (
        SELECT k.seq, k.new_id,
               coalesce(lag(k.new_id) OVER (PARTITION BY k.channel ORDER BY k.new_id),
                        (SELECT max(x.id) FROM %1$I.pgevents_event x
                         WHERE x.channel = k.channel AND x.id IS NOT NULL)) AS prev
        FROM pending k
    ), done AS (
        UPDATE %1$I.pgevents_event e SET id = l.new_id, prev_id = l.prev
        FROM linked l WHERE e.seq = l.seq AND e.id IS NULL  -- found through the pending index
        RETURNING e.*
    )
    SELECT d.id, d.prev_id, d.channel, %1$I.pgevents_frame(d::%1$I.pgevents_event) FROM done d ORDER BY d.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        UPDATE %1$I.pgevents_cursor SET value = last_id + n WHERE name = 'assigned';
    END IF;
END
$pgevents$
$sql$, s);
END
$migration$;
