/** Which events tell the user something was handed to them (someone else assigned or created a task for
 * them), and how a burst of them becomes one summary rather than a stream of messages. */

import type { Task, TaskEvent, User } from './types';

export type Notice =
  | { kind: 'single'; task: Task; actor: string; created: boolean }
  | { kind: 'summary'; tasks: Task[]; actors: string[] };

/** Whether `actor` (the event's) is `me`: the server names people by email. */
export function isMe(actor: string, me: User): boolean {
  const a = actor.trim().toLowerCase();
  const email = me.email.toLowerCase();
  return a === email || a.startsWith(`${email} `) || a.startsWith(`${email}(`) || a === me.id;
}

/** The event hands a task to `me`, done by someone else. */
export function isHandedToMe(event: TaskEvent, me: User): boolean {
  if (event.type !== 'task_assigned') return false;
  const task = event.task;
  if (!task || task.deleted_at || task.assignee_id !== me.id) return false;
  return !isMe(event.actor ?? '', me);
}

/** Collects hand-overs for `windowMs` after the first, then posts one notice: a single one, or a summary. */
export class HandOverNotifier {
  private pending: { task: Task; actor: string; created: boolean }[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly me: () => User | null,
    private readonly post: (notice: Notice) => void,
    private readonly windowMs = 400,
  ) {}

  observe(event: TaskEvent): void {
    const me = this.me();
    if (!me || !isHandedToMe(event, me)) return;
    // The same task handed over twice in a burst is one hand-over (the latest).
    this.pending = this.pending.filter((p) => p.task.id !== event.task.id);
    this.pending.push({ task: event.task, actor: event.actor, created: event.task.version === 1 });
    if (!this.timer) this.timer = setTimeout(() => this.flush(), this.windowMs);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const pending = this.pending;
    this.pending = [];
    if (pending.length === 1) this.post({ kind: 'single', ...pending[0] });
    else if (pending.length > 1) {
      this.post({
        kind: 'summary',
        tasks: pending.map((p) => p.task),
        actors: [...new Set(pending.map((p) => p.actor))],
      });
    }
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending = [];
  }
}
