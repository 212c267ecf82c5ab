DO $migration$
DECLARE
    s text := (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'pgevents_event'::regclass);
    t record;
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
    polling bigint;
    wake boolean;
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
            -- Wake the listener, unless it is polling the log and will see this row without
            -- (docs/delivery.md, "Wake-ups"). In this order: the flag (non-transactional: always
            -- its latest value), the hand-over key, the polling listener's key, the flag again.
            polling := (SELECT last_value FROM %1$I.pgevents_wake);
            wake := true;
            IF polling > 0 AND pg_try_advisory_xact_lock_shared(1885824374, 0) THEN
                -- Holding the hand-over key until this transaction ends: a listener that stops
                -- polling after this point waits for our commit before its last look at the log.
                IF NOT pg_try_advisory_xact_lock_shared(1885824374, polling::integer)
                   AND (SELECT last_value FROM %1$I.pgevents_wake) = polling THEN
                    -- that listener is alive (it holds its key) and still polling
                    wake := false;
                END IF;
            END IF;
            IF wake THEN
                PERFORM pg_notify('pgevents', '');
            END IF;
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
    -- Statement triggers with a transition table (v4) become row triggers again, which the
    -- older function handles; marked outdated (a sync would make them statement triggers).
    FOR t IN
        SELECT tg.tgname, tg.tgrelid::regclass AS rel, pg_get_triggerdef(tg.oid) AS def,
               obj_description(tg.oid, 'pg_trigger') AS note
        FROM pg_trigger tg
        WHERE tg.tgfoid = format('%I.pgevents_notify()', s)::regprocedure
          AND (tg.tgnewtable IS NOT NULL OR tg.tgoldtable IS NOT NULL)
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
        EXECUTE regexp_replace(t.def, ' REFERENCING (NEW|OLD) TABLE AS pgevents_(new|old) FOR EACH STATEMENT ',
                               ' FOR EACH ROW ');
        EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', t.tgname, t.rel, t.note || ':row');
    END LOOP;
END
$migration$;
