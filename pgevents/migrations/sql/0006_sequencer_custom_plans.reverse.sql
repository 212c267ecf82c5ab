DO $migration$
DECLARE
    s text := (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'pgevents_event'::regclass);
BEGIN
    EXECUTE format($sql$
ALTER FUNCTION %1$I.pgevents_assign(integer, bigint) RESET plan_cache_mode
$sql$, s);
END
$migration$;
