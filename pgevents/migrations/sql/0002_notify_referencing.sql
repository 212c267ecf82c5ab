
CREATE OR REPLACE FUNCTION pgevents_notify() RETURNS trigger
LANGUAGE plpgsql AS $pgevents$
DECLARE
    cfg jsonb := TG_ARGV[0]::jsonb;
    new_row jsonb;
    old_row jsonb;
    cols text[];
    msg text;
    ref jsonb;
    ref_row jsonb;
    full_row jsonb;
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
        IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
        full_row := new_row;
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
    IF coalesce((cfg->>'durable')::boolean, true) THEN
        INSERT INTO pgevents_event (channel, op, schema_name, table_name, "row", old)
        VALUES (cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, new_row, old_row);
        IF coalesce((cfg->>'notify')::boolean, true) THEN
            -- A wake-up only: identical notifications collapse to one per transaction.
            PERFORM pg_notify('pgevents', '');
        END IF;
    ELSE
        msg := jsonb_build_object('channel', cfg->>'channel', 'op', TG_OP, 'schema', TG_TABLE_SCHEMA,
                                  'table', TG_TABLE_NAME, 'row', new_row, 'old', old_row,
                                  'at', clock_timestamp())::text;
        IF octet_length(msg) >= 7990 THEN
            msg := jsonb_build_object('channel', cfg->>'channel', 'op', TG_OP, 'schema', TG_TABLE_SCHEMA,
                                      'table', TG_TABLE_NAME, 'row', NULL, 'old', NULL,
                                      'at', clock_timestamp(), 'truncated', true)::text;
        END IF;
        PERFORM pg_notify('pgevents', msg);
    END IF;
    IF TG_OP = 'UPDATE' AND jsonb_typeof(cfg->'referencing') = 'array' THEN
        FOR ref IN SELECT jsonb_array_elements(cfg->'referencing') LOOP
            SELECT jsonb_object_agg(c.col, full_row->k.key)
              INTO ref_row
              FROM jsonb_array_elements_text(ref->'columns') WITH ORDINALITY AS c(col, n)
              JOIN jsonb_array_elements_text(ref->'keys') WITH ORDINALITY AS k(key, n) USING (n);
            IF coalesce((cfg->>'durable')::boolean, true) THEN
                INSERT INTO pgevents_event (channel, op, schema_name, table_name, "row", old)
                VALUES (ref->>'channel', 'UPDATE', ref->>'schema', ref->>'table', ref_row, NULL);
            ELSE
                PERFORM pg_notify('pgevents', jsonb_build_object(
                    'channel', ref->>'channel', 'op', 'UPDATE', 'schema', ref->>'schema',
                    'table', ref->>'table', 'row', ref_row, 'old', NULL, 'at', clock_timestamp())::text);
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$pgevents$;
COMMENT ON FUNCTION pgevents_notify() IS 'pgevents v2';
