DO $migration$
DECLARE
    s text := (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'pgevents_event'::regclass);
BEGIN
    -- The columns of a row that a statement trigger sends when the row has a column added
    -- since the install (in neither of the trigger's lists). Run only by the trigger function
    -- (its owner); no SET, every name qualified, like pgevents_frame.
    EXECUTE format($sql$
CREATE OR REPLACE FUNCTION %1$I.pgevents_only_keys(j jsonb, keys text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT AS $pgevents$
SELECT coalesce(pg_catalog.jsonb_object_agg(e.key, e.value), '{}'::pg_catalog.jsonb)
FROM pg_catalog.jsonb_each($1) AS e
WHERE e.key OPERATOR(pg_catalog.=) ANY ($2)
$pgevents$
$sql$, s);
    EXECUTE format($sql$
REVOKE ALL ON FUNCTION %1$I.pgevents_only_keys(jsonb, text[]) FROM PUBLIC
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
    wake boolean := false;
    logged boolean := false;
    sent text[];
    known text[];
    others text[];
    written bigint;
BEGIN
    IF TG_LEVEL = 'STATEMENT' AND TG_OP IN ('INSERT', 'DELETE') THEN
        -- v4: a statement trigger reading its transition table (pgevents_new or pgevents_old)
        -- logs every row the statement wrote in one INSERT … SELECT, and wakes the listener
        -- once, instead of one trigger call and one INSERT per row.
        -- One statement in all. TG_ARGV[1]: the columns sent; TG_ARGV[2]: the table's other
        -- columns at install. A column in neither (added since the install) is not sent until
        -- a sync decides about it: only a row that has one calls pgevents_only_keys, so the
        -- usual statement runs no query but this one. The transition table is read in a
        -- subquery that names no variable (a column of the watched table may have any name)
        -- and that is not flattened (OFFSET 0: each row's JSON is built once).
        sent := TG_ARGV[1]::text[];
        others := TG_ARGV[2]::text[];
        known := others || sent;
        IF durable AND TG_OP = 'INSERT' THEN
            INSERT INTO %1$I.pgevents_event (channel, op, schema_name, table_name, "row")
            SELECT cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME,
                   CASE WHEN t.j - known = '{}'::jsonb THEN t.j - others
                        ELSE %1$I.pgevents_only_keys(t.j - others, sent) END
            FROM (SELECT to_jsonb(r.*) AS j FROM pgevents_new r OFFSET 0) t;
        ELSIF durable THEN
            INSERT INTO %1$I.pgevents_event (channel, op, schema_name, table_name, old)
            SELECT cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME,
                   CASE WHEN t.j - known = '{}'::jsonb THEN t.j - others
                        ELSE %1$I.pgevents_only_keys(t.j - others, sent) END
            FROM (SELECT to_jsonb(r.*) AS j FROM pgevents_old r OFFSET 0) t;
        ELSIF TG_OP = 'INSERT' THEN
            INSERT INTO %1$I.pgevents_transient (channel, op, schema_name, table_name, "row")
            SELECT cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME,
                   CASE WHEN t.j - known = '{}'::jsonb THEN t.j - others
                        ELSE %1$I.pgevents_only_keys(t.j - others, sent) END
            FROM (SELECT to_jsonb(r.*) AS j FROM pgevents_new r OFFSET 0) t;
        ELSE
            INSERT INTO %1$I.pgevents_transient (channel, op, schema_name, table_name, old)
            SELECT cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME,
                   CASE WHEN t.j - known = '{}'::jsonb THEN t.j - others
                        ELSE %1$I.pgevents_only_keys(t.j - others, sent) END
            FROM (SELECT to_jsonb(r.*) AS j FROM pgevents_old r OFFSET 0) t;
        END IF;
        GET DIAGNOSTICS written = ROW_COUNT;
        IF written = 0 THEN
            RETURN NULL;  -- the statement wrote no row: no event, no wake-up
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
            -- the hand-over key, the polling listener's key, the flag again. A flag never set
            -- reads NULL here (is_called false), 0 as before; read without a query.
            polling := coalesce(pg_sequence_last_value(%2$L::regclass), 0);
            wake := true;
        END IF;
    ELSE
        IF NOT logged THEN
            INSERT INTO %1$I.pgevents_transient (channel, op, schema_name, table_name, "row", old)
            VALUES (cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, new_row, old_row);
        END IF;
        -- Non-durable rows read their own flag: only a listener whose every look takes the
        -- transient table too sets it (an older one polls the log alone).
        polling := coalesce(pg_sequence_last_value(%3$L::regclass), 0);
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
                wake := coalesce(pg_sequence_last_value(%2$L::regclass), 0) <> polling;
            ELSE
                wake := coalesce(pg_sequence_last_value(%3$L::regclass), 0) <> polling;
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
$sql$, s, quote_ident(s) || '.pgevents_wake', quote_ident(s) || '.pgevents_wake_transient');
END
$migration$;
