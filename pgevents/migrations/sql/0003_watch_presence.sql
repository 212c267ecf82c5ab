
CREATE TABLE IF NOT EXISTS pgevents_presence (
    process text PRIMARY KEY,
    counts jsonb NOT NULL,
    seen timestamptz NOT NULL DEFAULT now()
);
