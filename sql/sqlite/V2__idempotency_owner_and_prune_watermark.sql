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
