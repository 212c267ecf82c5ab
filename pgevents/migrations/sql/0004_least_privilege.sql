DO $migration$
DECLARE
    s text := (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'pgevents_event'::regclass);
BEGIN
    EXECUTE format($sql$
CREATE UNLOGGED TABLE IF NOT EXISTS %1$I.pgevents_transient (
    seq bigserial PRIMARY KEY,
    channel text NOT NULL,
    op text,
    schema_name text,
    table_name text,
    "row" jsonb,
    old jsonb,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)
$sql$, s);
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
CREATE OR REPLACE FUNCTION %1$I.pgevents_notify() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgevents$
DECLARE
    cfg jsonb := TG_ARGV[0]::jsonb;
    durable boolean := coalesce((cfg->>'durable')::boolean, true);
    new_row jsonb;
    old_row jsonb;
    full_row jsonb;
    cols text[];
    unsent jsonb;
    ref jsonb;
    ref_row jsonb;
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
        IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
        full_row := new_row;
        IF TG_NARGS >= 3 THEN
            -- TG_ARGV[1]: the columns sent; TG_ARGV[2]: the table's other columns at install.
            cols := TG_ARGV[2]::text[];
            new_row := new_row - cols;
            old_row := old_row - cols;
            unsent := coalesce(new_row, old_row) - TG_ARGV[1]::text[];
            IF unsent <> '{}'::jsonb THEN
                -- columns added since the install: not sent until a sync decides about them
                cols := ARRAY(SELECT jsonb_object_keys(unsent));
                new_row := new_row - cols;
                old_row := old_row - cols;
            END IF;
        ELSE
            -- a trigger installed by an earlier version (until pgevents_sync replaces it)
            IF cfg ? 'include' THEN
                cols := ARRAY(SELECT jsonb_array_elements_text(cfg->'include'));
                IF new_row IS NOT NULL THEN
                    new_row := coalesce((SELECT jsonb_object_agg(key, value) FROM jsonb_each(new_row)
                                         WHERE key = ANY(cols)), '{}'::jsonb);
                END IF;
                IF old_row IS NOT NULL THEN
                    old_row := coalesce((SELECT jsonb_object_agg(key, value) FROM jsonb_each(old_row)
                                         WHERE key = ANY(cols)), '{}'::jsonb);
                END IF;
            END IF;
            IF cfg ? 'exclude' THEN
                cols := ARRAY(SELECT jsonb_array_elements_text(cfg->'exclude'));
                new_row := new_row - cols;
                old_row := old_row - cols;
            END IF;
        END IF;
    END IF;
    IF durable THEN
        INSERT INTO %1$I.pgevents_event (channel, op, schema_name, table_name, "row", old)
        VALUES (cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, new_row, old_row);
        IF coalesce((cfg->>'notify')::boolean, true) THEN
            PERFORM pg_notify('pgevents', '');
        END IF;
    ELSE
        INSERT INTO %1$I.pgevents_transient (channel, op, schema_name, table_name, "row", old)
        VALUES (cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, new_row, old_row);
        PERFORM pg_notify('pgevents', 't');
    END IF;
    IF TG_OP = 'UPDATE' AND jsonb_typeof(cfg->'referencing') = 'array' THEN
        FOR ref IN SELECT jsonb_array_elements(cfg->'referencing') LOOP
            SELECT jsonb_object_agg(c.col, full_row->k.key)
              INTO ref_row
              FROM jsonb_array_elements_text(ref->'columns') WITH ORDINALITY AS c(col, n)
              JOIN jsonb_array_elements_text(ref->'keys') WITH ORDINALITY AS k(key, n) USING (n);
            IF durable THEN
                INSERT INTO %1$I.pgevents_event (channel, op, schema_name, table_name, "row", old)
                VALUES (ref->>'channel', 'UPDATE', ref->>'schema', ref->>'table', ref_row, NULL);
            ELSE
                INSERT INTO %1$I.pgevents_transient (channel, op, schema_name, table_name, "row", old)
                VALUES (ref->>'channel', 'UPDATE', ref->>'schema', ref->>'table', ref_row, NULL);
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$pgevents$
$sql$, s);
    EXECUTE format($sql$COMMENT ON FUNCTION %1$I.pgevents_notify() IS 'pgevents v3'$sql$, s);
    EXECUTE format($sql$
CREATE OR REPLACE FUNCTION %1$I.pgevents_assign(batch integer, published bigint)
RETURNS TABLE (event_id bigint, prev_event_id bigint, event_channel text, event_frame text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgevents$
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
CREATE OR REPLACE FUNCTION %1$I.pgevents_take_transient(batch integer)
RETURNS TABLE (event_channel text, event_frame text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgevents$
    WITH taken AS (
        DELETE FROM %1$I.pgevents_transient t
        WHERE t.seq IN (SELECT seq FROM %1$I.pgevents_transient ORDER BY seq LIMIT batch)
        RETURNING t.*
    )
    SELECT channel, jsonb_build_object(
        'type', 'event', 'channel', channel, 'id', NULL, 'op', op,
        'schema', schema_name, 'table', table_name, 'row', "row", 'old', old,
        'at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text
    FROM taken ORDER BY seq
$pgevents$
$sql$, s);
    EXECUTE format($sql$
REVOKE ALL ON FUNCTION %1$I.pgevents_notify(), %1$I.pgevents_frame(%1$I.pgevents_event),
    %1$I.pgevents_assign(integer, bigint), %1$I.pgevents_prune(double precision, integer),
    %1$I.pgevents_take_transient(integer) FROM PUBLIC
$sql$, s);
    EXECUTE format($sql$
REVOKE ALL ON TABLE %1$I.pgevents_event, %1$I.pgevents_cursor, %1$I.pgevents_transient,
    %1$I.pgevents_presence FROM PUBLIC
$sql$, s);
END
$migration$;
DO $migration$
DECLARE
    s text := (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'pgevents_event'::regclass);
    grantee regrole;
BEGIN
    FOR grantee IN
        SELECT DISTINCT a.grantee::regrole
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.relname IN ('pgevents_event', 'pgevents_cursor') AND c.relnamespace::regnamespace::text = quote_ident(s)
          AND a.grantee <> 0 AND a.grantee <> c.relowner
          AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
    LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %1$I.pgevents_event, %1$I.pgevents_cursor FROM %2$s',
                       s, grantee);
    END LOOP;
END
$migration$;
