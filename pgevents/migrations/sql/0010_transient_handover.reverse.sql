DO $migration$
DECLARE
    s text := (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'pgevents_event'::regclass);
BEGIN
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
    sample jsonb;
    logged boolean := false;
BEGIN
    IF TG_LEVEL = 'STATEMENT' AND TG_OP IN ('INSERT', 'DELETE') THEN
        -- v4: a statement trigger reading its transition table (pgevents_new or pgevents_old)
        -- logs every row the statement wrote in one INSERT … SELECT, and wakes the listener
        -- once, instead of one trigger call and one INSERT per row.
        IF TG_OP = 'INSERT' THEN
            sample := (SELECT to_jsonb(r) FROM pgevents_new r LIMIT 1);
        ELSE
            sample := (SELECT to_jsonb(r) FROM pgevents_old r LIMIT 1);
        END IF;
        IF sample IS NULL THEN
            RETURN NULL;  -- the statement wrote no row: no event, no wake-up
        END IF;
        -- Every row has the sample's keys. TG_ARGV[1]: the columns sent; TG_ARGV[2]: the
        -- table's other columns at install; columns added since are not sent until a sync
        -- decides about them.
        cols := TG_ARGV[2]::text[]
                || ARRAY(SELECT jsonb_object_keys(sample - TG_ARGV[1]::text[] - TG_ARGV[2]::text[]));
        IF durable AND TG_OP = 'INSERT' THEN
            INSERT INTO %1$I.pgevents_event (channel, op, schema_name, table_name, "row")
            SELECT cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(r) - cols FROM pgevents_new r;
        ELSIF durable THEN
            INSERT INTO %1$I.pgevents_event (channel, op, schema_name, table_name, old)
            SELECT cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(r) - cols FROM pgevents_old r;
        ELSIF TG_OP = 'INSERT' THEN
            INSERT INTO %1$I.pgevents_transient (channel, op, schema_name, table_name, "row")
            SELECT cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(r) - cols FROM pgevents_new r;
        ELSE
            INSERT INTO %1$I.pgevents_transient (channel, op, schema_name, table_name, old)
            SELECT cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(r) - cols FROM pgevents_old r;
        END IF;
        logged := true;
    ELSIF TG_LEVEL = 'ROW' THEN
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
        IF NOT logged THEN
            INSERT INTO %1$I.pgevents_event (channel, op, schema_name, table_name, "row", old)
            VALUES (cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, new_row, old_row);
        END IF;
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
        IF NOT logged THEN
            INSERT INTO %1$I.pgevents_transient (channel, op, schema_name, table_name, "row", old)
            VALUES (cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, new_row, old_row);
        END IF;
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
    EXECUTE format($sql$
CREATE OR REPLACE FUNCTION %1$I.pgevents_wake(busy boolean) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgevents$
BEGIN
    IF NOT busy THEN
        PERFORM setval(%2$L::regclass, 0);
        RETURN false;
    END IF;
    -- The polling listener holds a key of its own (its backend pid) for the rest of its
    -- session, so a flag left behind by a listener that died reads as "wake it".
    IF NOT EXISTS (SELECT 1 FROM pg_locks l
                   WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted
                     AND l.mode = 'ExclusiveLock' AND l.classid = 1885824374::oid
                     AND l.objid = pg_backend_pid()::oid AND l.objsubid = 2)
       AND NOT pg_try_advisory_lock(1885824374, pg_backend_pid()) THEN
        RETURN false;  -- another session holds this backend's key: writers keep waking us
    END IF;
    PERFORM setval(%2$L::regclass, pg_backend_pid());
    RETURN true;
END
$pgevents$
$sql$, s, quote_ident(s) || '.pgevents_wake');
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
DROP FUNCTION IF EXISTS %1$I.pgevents_wake(boolean, boolean)
$sql$, s);
    EXECUTE format($sql$
DROP SEQUENCE IF EXISTS %1$I.pgevents_wake_transient
$sql$, s);
END
$migration$;
