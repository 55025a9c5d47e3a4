/** The task-state reducer: the tasks in view, kept current by applying events (newest version wins), grouped
 * by status for the tree, with the count of the user's open tasks. */

import { OPEN_STATUSES, PRIORITIES, STATUSES, type Status, type Task, type TaskEvent } from './types';

/** Which tasks the state holds: those of one repository, or all. */
export interface Scope {
  repository?: string;
}

/** What applying an event did. */
export type Change = { kind: 'upsert'; task: Task; previous?: Task } | { kind: 'remove'; task: Task } | null;

export class TaskState {
  readonly tasks = new Map<string, Task>();
  /** Versions of tasks seen deleted, so a late, older copy does not bring one back. */
  private readonly gone = new Map<string, number>();

  constructor(public scope: Scope = {}) {}

  inScope(task: Task): boolean {
    if (task.deleted_at) return false;
    return !this.scope.repository || task.repository === this.scope.repository;
  }

  /** Replaces everything with a freshly loaded list. */
  replaceAll(tasks: Task[]): void {
    this.tasks.clear();
    this.gone.clear();
    for (const task of tasks) if (this.inScope(task)) this.tasks.set(task.id, task);
  }

  /** Applies one event; an event older than what is held changes nothing (replays, overlaps with a load). */
  apply(event: TaskEvent): Change {
    return this.put(event.task && { ...event.task, id: event.task.id ?? event.task_id }, event.type === 'task_deleted');
  }

  /** Puts a task as a write answered it (the event that follows is then a no-op). */
  put(task: Task, deleted = false): Change {
    if (!task) return null;
    const held = this.tasks.get(task.id);
    if (held && held.version >= task.version) return null;
    const goneAt = this.gone.get(task.id);
    if (goneAt !== undefined && goneAt >= task.version) return null;
    if (deleted || task.deleted_at || !this.inScope(task)) {
      if (deleted || task.deleted_at) this.gone.set(task.id, task.version);
      if (!held) return null;
      this.tasks.delete(task.id);
      return { kind: 'remove', task };
    }
    this.tasks.set(task.id, task);
    return { kind: 'upsert', task, previous: held };
  }

  /** The tasks to show, grouped by status in the tree's order; `assigneeId` keeps only that user's. */
  groups(assigneeId?: string): Map<Status, Task[]> {
    const groups = new Map<Status, Task[]>(STATUSES.map((s) => [s, []]));
    for (const task of this.tasks.values()) {
      if (assigneeId && task.assignee_id !== assigneeId) continue;
      groups.get(task.status)?.push(task);
    }
    for (const list of groups.values()) list.sort(byPriorityThenRecent);
    return groups;
  }

  /** How many tasks assigned to `userId` are still open (not started, in progress, blocked). */
  openCount(userId: string | undefined): number {
    if (!userId) return 0;
    let count = 0;
    for (const task of this.tasks.values()) if (task.assignee_id === userId && OPEN_STATUSES.has(task.status)) count++;
    return count;
  }
}

function byPriorityThenRecent(a: Task, b: Task): number {
  const rank = PRIORITIES.indexOf(a.priority) - PRIORITIES.indexOf(b.priority);
  return rank !== 0 ? rank : b.updated_at.localeCompare(a.updated_at);
}

/** A task's name in messages: its key when it has one, then its title. */
export function taskLabel(task: Pick<Task, 'key' | 'title'>): string {
  return task.key ? `${task.key} ${task.title}` : task.title;
}
