/** The JSON shapes `task-mcp serve` answers with (its REST API and event stream), as this extension reads them. */

export type Status = 'not_started' | 'in_progress' | 'blocked' | 'completed' | 'cancelled';
export type Priority = 'low' | 'medium' | 'high' | 'urgent';

export const STATUSES: readonly Status[] = ['in_progress', 'not_started', 'blocked', 'completed', 'cancelled'];
export const PRIORITIES: readonly Priority[] = ['urgent', 'high', 'medium', 'low'];
export const OPEN_STATUSES: ReadonlySet<string> = new Set(['not_started', 'in_progress', 'blocked']);

export const STATUS_LABELS: Record<Status, string> = {
  not_started: 'Not started',
  in_progress: 'In progress',
  blocked: 'Blocked',
  completed: 'Completed',
  cancelled: 'Cancelled',
};

/** Who holds a claim on a task (servers with claims only). */
export interface Claim {
  holder: string;
  agent?: string | null;
  expires_at?: string | null;
}

export interface Task {
  id: string;
  /** The short key (`WEB-12`), on servers that give tasks keys. */
  key?: string | null;
  title: string;
  description: string | null;
  status: Status;
  priority: Priority;
  complexity: string;
  assignee_id: string | null;
  assignee_email: string | null;
  repository: string | null;
  created_by: string;
  updated_by: string;
  created_at: string;
  updated_at: string;
  version: number;
  deleted_at?: string | null;
  claim?: Claim | null;
}

export interface TaskPage {
  tasks: Task[];
  next_cursor?: string | null;
}

export interface User {
  id: string;
  email: string;
  name?: string | null;
}

export interface Comment {
  id: string;
  task_id: string;
  comment: string;
  author: string;
  created_at: string;
}

export interface HistoryRow {
  id: string;
  task_id: string;
  field_changed: string;
  old_value: string | null;
  new_value: string | null;
  changed_by: string;
  comment: string | null;
  changed_at: string;
}

/** One event of `GET /api/tasks/stream` (its `data:`). */
export interface TaskEvent {
  type: string;
  task_id: string;
  task: Task;
  timestamp: string;
  seq: number;
  actor: string;
}

/** What the server can do beyond the base API, read from its OpenAPI document. */
export interface Features {
  claims: boolean;
}
