DROP TABLE IF EXISTS pgevents_presence;
