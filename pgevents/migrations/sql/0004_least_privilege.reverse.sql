DROP FUNCTION IF EXISTS pgevents_take_transient(integer);
DROP FUNCTION IF EXISTS pgevents_prune(double precision, integer);
DROP TABLE IF EXISTS pgevents_transient;

CREATE OR REPLACE FUNCTION pgevents_frame(e pgevents_event) RETURNS text
LANGUAGE sql STABLE AS $pgevents$
    SELECT jsonb_build_object(
        'type', 'event', 'channel', e.channel, 'id', e.id, 'op', e.op,
        'schema', e.schema_name, 'table', e.table_name, 'row', e."row", 'old', e.old,
        'at', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text
$pgevents$;

CREATE OR REPLACE FUNCTION pgevents_assign(batch integer, published bigint)
RETURNS TABLE (event_id bigint, prev_event_id bigint, event_channel text, event_frame text)
LANGUAGE plpgsql AS $pgevents$
DECLARE
    last_id bigint;
    n bigint;
BEGIN
    UPDATE pgevents_cursor SET value = greatest(value, published) WHERE name = 'published';
    SELECT value INTO last_id FROM pgevents_cursor WHERE name = 'assigned' FOR UPDATE;
    RETURN QUERY
    WITH pending AS (
        SELECT s.seq, s.channel, last_id + row_number() OVER (ORDER BY s.seq) AS new_id
        FROM (SELECT p.seq, p.channel FROM pgevents_event p
              WHERE p.id IS NULL ORDER BY p.seq LIMIT batch) s
    ), linked AS (
        SELECT k.seq, k.new_id,
               coalesce(lag(k.new_id) OVER (PARTITION BY k.channel ORDER BY k.new_id),
                        (SELECT max(x.id) FROM pgevents_event x
                         WHERE x.channel = k.channel AND x.id IS NOT NULL)) AS prev
        FROM pending k
    ), done AS (
        UPDATE pgevents_event e SET id = l.new_id, prev_id = l.prev
        FROM linked l WHERE e.seq = l.seq
        RETURNING e.*
    )
    SELECT d.id, d.prev_id, d.channel, pgevents_frame(d::pgevents_event) FROM done d ORDER BY d.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        UPDATE pgevents_cursor SET value = last_id + n WHERE name = 'assigned';
    END IF;
END
$pgevents$;
