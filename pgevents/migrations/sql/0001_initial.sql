
CREATE TABLE IF NOT EXISTS pgevents_event (
    seq bigserial PRIMARY KEY,
    id bigint UNIQUE,
    prev_id bigint,
    channel text NOT NULL,
    op text,
    schema_name text,
    table_name text,
    "row" jsonb,
    old jsonb,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS pgevents_event_pending ON pgevents_event (seq) WHERE id IS NULL;
CREATE INDEX IF NOT EXISTS pgevents_event_channel_id ON pgevents_event (channel, id) WHERE id IS NOT NULL;
CREATE TABLE IF NOT EXISTS pgevents_cursor (name text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO pgevents_cursor (name, value)
VALUES ('assigned', 0), ('published', 0), ('pruned', 0)
ON CONFLICT (name) DO NOTHING;

CREATE OR REPLACE FUNCTION pgevents_notify() RETURNS trigger
LANGUAGE plpgsql AS $pgevents$
DECLARE
    cfg jsonb := TG_ARGV[0]::jsonb;
    new_row jsonb;
    old_row jsonb;
    cols text[];
    msg text;
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
        IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
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
    RETURN NULL;
END
$pgevents$;
COMMENT ON FUNCTION pgevents_notify() IS 'pgevents v1';

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
