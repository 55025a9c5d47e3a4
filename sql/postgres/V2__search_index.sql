-- Trigram indexes for the `query` filter (ILIKE '%…%' in title and description). pg_trgm ships with
-- PostgreSQL's contrib package and is a trusted extension; where it is not installed, searching still
-- works (by scanning), so this migration creates the indexes only when it can.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX tasks_title_trgm ON tasks USING gin (title gin_trgm_ops) WHERE deleted_at IS NULL;
        CREATE INDEX tasks_description_trgm ON tasks USING gin (description gin_trgm_ops)
            WHERE deleted_at IS NULL;
    END IF;
EXCEPTION
    -- Not allowed to create the extension (a restricted role), or it lives in a schema outside the
    -- search path: searching scans instead.
    WHEN insufficient_privilege OR undefined_object THEN
        RAISE NOTICE 'pg_trgm not created (%): the query filter will scan', SQLERRM;
END;
$$;
