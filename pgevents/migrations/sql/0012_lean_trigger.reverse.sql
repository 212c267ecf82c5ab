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
    wake boolean := false;
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
            -- In this order: the flag (non-transactional: always its latest value), then below
            -- the hand-over key, the polling listener's key, the flag again.
            polling := (SELECT last_value FROM %1$I.pgevents_wake);
            wake := true;
        END IF;
    ELSE
        IF NOT logged THEN
            INSERT INTO %1$I.pgevents_transient (channel, op, schema_name, table_name, "row", old)
            VALUES (cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, new_row, old_row);
        END IF;
        -- Non-durable rows read their own flag: only a listener whose every look takes the
        -- transient table too sets it (an older one polls the log alone).
        polling := (SELECT last_value FROM %1$I.pgevents_wake_transient);
        wake := true;
    END IF;
    -- Wake the listener, unless it is polling and will see this row without (docs/delivery.md,
    -- "Wake-ups"): the same steps for both kinds of row, each reading its own flag.
    IF wake AND polling > 0 AND pg_try_advisory_xact_lock_shared(1885824374, 0) THEN
        -- Holding the hand-over key until this transaction ends: a listener that stops
        -- polling after this point waits for our commit before its last look.
        IF NOT pg_try_advisory_xact_lock_shared(1885824374, polling::integer) THEN
            -- that listener is alive (it holds its key): is it still polling?
            IF durable THEN
                wake := (SELECT last_value FROM %1$I.pgevents_wake) <> polling;
            ELSE
                wake := (SELECT last_value FROM %1$I.pgevents_wake_transient) <> polling;
            END IF;
        END IF;
    END IF;
    IF wake THEN
        PERFORM pg_notify('pgevents', CASE WHEN durable THEN '' ELSE 't' END);
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
DROP FUNCTION IF EXISTS %1$I.pgevents_only_keys(jsonb, text[])
$sql$, s);
END
$migration$;
