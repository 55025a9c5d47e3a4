-- Agents working together: a task may be a step of another (parent_id), may wait on others
-- (task_links), and may be claimed by one agent session until its lease ends (claim_*).
-- Checked at commit: a copy inserts tasks oldest first, and a parent may be younger than its subtask.
ALTER TABLE tasks ADD COLUMN parent_id TEXT REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED;
-- The session holding the task, the client's name, and when the lease ends (microseconds).
ALTER TABLE tasks ADD COLUMN claim_holder TEXT;
ALTER TABLE tasks ADD COLUMN claim_agent TEXT;
ALTER TABLE tasks ADD COLUMN claim_expires_at INTEGER;
-- The holder whose lease ran out, so their renewal is refused rather than silently granted anew.
ALTER TABLE tasks ADD COLUMN claim_lapsed_holder TEXT;

CREATE INDEX tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX tasks_not_started ON tasks (created_at, id) WHERE status = 'not_started' AND deleted_at IS NULL;
CREATE INDEX tasks_claim_expiry ON tasks (claim_expires_at) WHERE claim_expires_at IS NOT NULL;

-- task_id waits on blocked_by until that one is completed or cancelled.
CREATE TABLE task_links (
    task_id    TEXT    NOT NULL REFERENCES tasks (id),
    blocked_by TEXT    NOT NULL REFERENCES tasks (id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (task_id, blocked_by),
    CHECK (task_id <> blocked_by)
) STRICT;

CREATE INDEX task_links_blocked_by ON task_links (blocked_by);
