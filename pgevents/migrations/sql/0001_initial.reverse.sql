DROP FUNCTION IF EXISTS pgevents_notify() CASCADE;
DROP FUNCTION IF EXISTS pgevents_assign(integer, bigint);
DROP FUNCTION IF EXISTS pgevents_frame(pgevents_event);
DROP TABLE IF EXISTS pgevents_cursor;
DROP TABLE IF EXISTS pgevents_event;
