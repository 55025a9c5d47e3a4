-- The embedded SQLite schema: the same tables and rules as sql/postgres, in SQLite's terms.
-- UUIDs are lower-case hyphenated TEXT (so they sort as PostgreSQL sorts uuids); timestamps are INTEGER
-- microseconds since the Unix epoch, UTC (they sort correctly and keep PostgreSQL's precision).
-- Tables are STRICT so a value of the wrong type is refused rather than stored.

CREATE TABLE users (
    id              TEXT    NOT NULL PRIMARY KEY,
    email           TEXT    NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    name            TEXT,
    github_username TEXT,
    created_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE repositories (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    url        TEXT,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE tasks (
    id              TEXT    NOT NULL PRIMARY KEY,
    title           TEXT    NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    description     TEXT,
    status          TEXT    NOT NULL DEFAULT 'not_started'
                    CHECK (status IN ('not_started', 'in_progress', 'blocked', 'completed', 'cancelled')),
    priority        TEXT    NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    complexity      TEXT    NOT NULL DEFAULT 'medium' CHECK (complexity IN ('low', 'medium', 'high')),
    assignee_id     TEXT    REFERENCES users (id),
    repository_id   TEXT    REFERENCES repositories (id),
    created_by      TEXT    NOT NULL,
    updated_by      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    -- Set by the store on every change (SQLite has no now() with microseconds that all processes share).
    updated_at      INTEGER NOT NULL,
    version         INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    deleted_at      INTEGER,
    idempotency_key TEXT,
    -- lower(title) || char(10) || lower(description), lower-cased by the store with Unicode rules
    -- (SQLite's own lower() and LIKE fold ASCII only), so `query` matches case-insensitively.
    search_text     TEXT    NOT NULL
) STRICT;

-- One index per listing filter, each ending in the keyset order, over the rows listings see.
CREATE INDEX tasks_live_order ON tasks (updated_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tasks_assignee ON tasks (assignee_id, updated_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tasks_repository ON tasks (repository_id, updated_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tasks_status ON tasks (status, updated_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tasks_priority ON tasks (priority, updated_at DESC, id DESC) WHERE deleted_at IS NULL;
-- A retried create with the same key from the same actor finds the first task.
CREATE UNIQUE INDEX tasks_idempotency ON tasks (created_by, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Rows are listed in the order they were written: by rowid (never reused here, as rows are never
-- deleted), which an index on task_id alone already keeps in that order.
CREATE TABLE task_history (
    id            TEXT    NOT NULL PRIMARY KEY,
    task_id       TEXT    NOT NULL REFERENCES tasks (id),
    field_changed TEXT    NOT NULL,
    old_value     TEXT,
    new_value     TEXT,
    changed_by    TEXT    NOT NULL,
    comment       TEXT,
    changed_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX task_history_task ON task_history (task_id);

CREATE TABLE task_comments (
    id         TEXT    NOT NULL PRIMARY KEY,
    task_id    TEXT    NOT NULL REFERENCES tasks (id),
    comment    TEXT    NOT NULL CHECK (length(comment) >= 1),
    author     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX task_comments_task ON task_comments (task_id);

-- The transactional outbox and the live feed's log. AUTOINCREMENT: a seq is never reused, even after
-- the newest events are pruned, so consumers that drop duplicates by seq never drop a new event.
-- One writer at a time makes seq order commit order.
CREATE TABLE events (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type           TEXT    NOT NULL CHECK (event_type IN ('task_created', 'task_assigned', 'task_updated',
                                                                 'task_completed', 'task_commented', 'task_deleted')),
    task_id              TEXT    NOT NULL,
    actor                TEXT    NOT NULL,
    -- The task after the change, as the public JSON shape.
    task                 TEXT    NOT NULL CHECK (json_valid(task)),
    assignee_id          TEXT,
    previous_assignee_id TEXT,
    repository           TEXT,
    created_at           INTEGER NOT NULL,
    published_at         INTEGER
) STRICT;

CREATE INDEX events_unpublished ON events (seq) WHERE published_at IS NULL;
CREATE INDEX events_created_at ON events (created_at);

CREATE TABLE api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL REFERENCES users (id),
    name         TEXT    NOT NULL UNIQUE,
    key_hash     TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;

CREATE INDEX api_keys_user ON api_keys (user_id);
