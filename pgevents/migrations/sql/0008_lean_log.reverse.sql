DO $migration$
DECLARE
    s text := (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'pgevents_event'::regclass);
BEGIN
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
        FROM linked l WHERE e.seq = l.seq
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
    EXECUTE format($sql$
CREATE OR REPLACE FUNCTION %1$I.pgevents_prune(retention double precision, chunk integer) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgevents$
    WITH head AS (
        SELECT seq, id, at FROM %1$I.pgevents_event
        WHERE id IS NOT NULL
          AND id <= (SELECT value FROM %1$I.pgevents_cursor WHERE name = 'published')
        ORDER BY id LIMIT chunk
    ), old AS (
        SELECT seq, id FROM head WHERE at < now() - make_interval(secs => retention)
    ), gone AS (
        DELETE FROM %1$I.pgevents_event e USING old WHERE e.seq = old.seq RETURNING e.id
    ), moved AS (
        UPDATE %1$I.pgevents_cursor SET value = greatest(value, (SELECT max(id) FROM gone))
        WHERE name = 'pruned' AND EXISTS (SELECT 1 FROM gone)
    )
    SELECT count(*) FROM gone
$pgevents$
$sql$, s);
    EXECUTE format($sql$
DROP INDEX IF EXISTS %1$I.pgevents_event_id
$sql$, s);
    EXECUTE format($sql$
ALTER TABLE %1$I.pgevents_event ADD CONSTRAINT pgevents_event_id_key UNIQUE (id)
$sql$, s);
    EXECUTE format($sql$
ALTER TABLE %1$I.pgevents_event ADD CONSTRAINT pgevents_event_pkey PRIMARY KEY (seq)
$sql$, s);
END
$migration$;
