-- What an API key may do: read_write (every key made before) or read_only (list and read, never change).
ALTER TABLE api_keys
    ADD COLUMN scope TEXT NOT NULL DEFAULT 'read_write' CHECK (scope IN ('read_write', 'read_only'));
