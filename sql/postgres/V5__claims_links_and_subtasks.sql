-- Agents working together: a task may be a step of another (parent_id), may wait on others
-- (task_links), and may be claimed by one agent session until its lease ends (claim_*).
-- Checked at commit: a copy inserts tasks oldest first, and a parent may be younger than its subtask.
ALTER TABLE tasks ADD COLUMN parent_id UUID REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED;
-- The session holding the task, the client's name, and when the lease ends; all three or none.
ALTER TABLE tasks ADD COLUMN claim_holder TEXT;
ALTER TABLE tasks ADD COLUMN claim_agent TEXT;
ALTER TABLE tasks ADD COLUMN claim_expires_at TIMESTAMPTZ;
-- The holder whose lease ran out, so their renewal is refused rather than silently granted anew.
ALTER TABLE tasks ADD COLUMN claim_lapsed_holder TEXT;
ALTER TABLE tasks ADD CONSTRAINT tasks_claim_check CHECK ((claim_holder IS NULL) = (claim_expires_at IS NULL));
ALTER TABLE tasks ADD CONSTRAINT tasks_parent_check CHECK (parent_id <> id);

CREATE INDEX tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL AND deleted_at IS NULL;
-- The ready queue's candidates, and the sweep of leases that ran out.
CREATE INDEX tasks_not_started ON tasks (created_at, id) WHERE status = 'not_started' AND deleted_at IS NULL;
CREATE INDEX tasks_claim_expiry ON tasks (claim_expires_at) WHERE claim_expires_at IS NOT NULL;

-- task_id waits on blocked_by until that one is completed or cancelled.
CREATE TABLE task_links (
    task_id    UUID NOT NULL REFERENCES tasks (id),
    blocked_by UUID NOT NULL REFERENCES tasks (id),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, blocked_by),
    CONSTRAINT task_links_self_check CHECK (task_id <> blocked_by)
);

CREATE INDEX task_links_blocked_by ON task_links (blocked_by);
