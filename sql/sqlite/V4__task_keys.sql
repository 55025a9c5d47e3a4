-- Task keys (`WEB-42`): each task gets a number in a series, and a series has a prefix. One series per
-- repository (created with the repository's first task), and series 0, prefix `T`, for tasks without
-- one (created with the first such task). A series counts up and never reuses a number; a task keeps its series when it moves. A
-- series' prefix can change: every prefix it ever had stays in key_prefixes, so old keys resolve.
CREATE TABLE key_series (
    id            INTEGER PRIMARY KEY,
    prefix        TEXT    NOT NULL UNIQUE
                  CHECK (length(prefix) BETWEEN 1 AND 6 AND prefix NOT GLOB '*[^A-Z0-9]*'),
    repository_id TEXT    UNIQUE REFERENCES repositories (id),
    last_number   INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE key_prefixes (
    prefix    TEXT    NOT NULL PRIMARY KEY,
    series_id INTEGER NOT NULL REFERENCES key_series (id)
) STRICT;

-- Filled for the tasks of before by the store right after migrating, in creation order.
ALTER TABLE tasks ADD COLUMN key_series_id INTEGER REFERENCES key_series (id);
ALTER TABLE tasks ADD COLUMN key_number INTEGER;

CREATE UNIQUE INDEX tasks_key ON tasks (key_series_id, key_number);
