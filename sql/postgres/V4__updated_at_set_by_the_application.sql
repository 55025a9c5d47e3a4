-- updated_at is now written by every statement that changes a task, with the rule that it never goes
-- backwards (the greater of the change's time and the previous value) applied in one place, the
-- application's domain layer, for both stores. The trigger that applied it here goes.
DROP TRIGGER IF EXISTS tasks_set_updated_at ON tasks;
DROP FUNCTION IF EXISTS tasks_set_updated_at();
