-- The next ready task is the not-started one with the highest priority, then the oldest: an index in
-- exactly that order lets a claim read the first few entries instead of sorting every open task.
-- It replaces the index in creation order, which still left the priority to sort.
DROP INDEX IF EXISTS tasks_not_started;
CREATE INDEX tasks_ready_order ON tasks (
    (CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END), created_at, id
) WHERE status = 'not_started' AND deleted_at IS NULL;
