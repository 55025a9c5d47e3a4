-- Idempotency keys belong to the acting user (the credential's identity), not to the free-text label
-- recorded in created_by: two users may share a label, one user may write under two. The request's
-- fingerprint is kept so a key replayed with a different request is refused rather than answered
-- with the first task. Keys used before this version stay with their label (the best owner known).
ALTER TABLE tasks ADD COLUMN idempotency_owner TEXT;
ALTER TABLE tasks ADD COLUMN idempotency_fingerprint TEXT;
UPDATE tasks SET idempotency_owner = created_by WHERE idempotency_key IS NOT NULL;
DROP INDEX tasks_idempotency;
CREATE UNIQUE INDEX tasks_idempotency_owner_key ON tasks (idempotency_owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- How far pruning has gone: any event at or below this seq may be gone from the log. The oldest seq
-- kept says nothing about holes above it (pruning skips events not yet published), so a client that
-- resumes from below this mark is told to resync rather than replayed with a silent gap. One row.
CREATE TABLE event_log_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through INTEGER NOT NULL
) STRICT;
-- A log pruned before this version: what lies below the oldest event kept is gone.
INSERT INTO event_log_state (id, pruned_through)
VALUES (1, coalesce((SELECT min(seq) - 1 FROM events),
                    (SELECT seq FROM sqlite_sequence WHERE name = 'events'),
                    0));
