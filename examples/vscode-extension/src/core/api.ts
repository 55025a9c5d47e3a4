/** The REST client of `task-mcp serve`: one method per route the extension uses, errors classified once. */

import { randomUUID } from 'node:crypto';
import type { Comment, Features, HistoryRow, Status, Task, TaskPage, User } from './types';

/** What went wrong, in the terms the fix depends on. */
export type ErrorKind =
  | 'offline' // no answer at all: the server is down or the URL is wrong
  | 'unauthorized' // 401: the token expired or was revoked
  | 'forbidden' // 403: the server refuses this client (host, origin, scope)
  | 'rate_limited' // 429
  | 'conflict' // 412/409 with the current task
  | 'not_found'
  | 'invalid'
  | 'unavailable' // 503: the server's store is down
  | 'missing' // the route does not exist on this server (an older task-mcp)
  | 'other';

export class ApiError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly status = 0,
    readonly code = '',
    readonly details: Record<string, unknown> = {},
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The task as it is now, when a write lost a race (412/409 `version_conflict`). */
  get current(): Task | null {
    const current = this.details.current;
    return current && typeof current === 'object' ? (current as Task) : null;
  }
}

function kindOf(status: number, code: string): ErrorKind {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 429) return 'rate_limited';
  if (status === 412 || (status === 409 && code === 'version_conflict')) return 'conflict';
  if (status === 404 && code === 'route_not_found') return 'missing';
  if (status === 404) return 'not_found';
  if (status === 405) return 'missing';
  if (status === 400 || status === 409 || status === 422) return 'invalid';
  if (status === 503) return 'unavailable';
  return 'other';
}

export interface ListFilter {
  repository?: string;
  /** "me", a user id or an email. */
  assignee?: string;
  status?: Status;
  priority?: string;
  q?: string;
}

export interface NewTask {
  title: string;
  priority?: string;
  description?: string;
  repository?: string;
  assignee_id?: string;
  status?: Status;
}

/** The result of claiming: the task, or none with the server's reason. */
export interface ClaimResult {
  task: Task | null;
  reason?: string;
}

export interface ApiOptions {
  baseUrl: string;
  token: string;
  /** Milliseconds before a request is given up as unanswered. */
  timeoutMs?: number;
}

/** The `If-Match` value of a version (the server's `ETag`). */
export function ifMatch(version: number): string {
  return `"${version}"`;
}

export class TaskApi {
  readonly baseUrl: string;
  readonly token: string;
  private readonly timeoutMs: number;

  constructor(options: ApiOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 15000;
  }

  /** Sends one request and returns its JSON; any failure becomes an `ApiError`. */
  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${this.token}`,
          Accept: 'application/json',
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new ApiError('offline', `cannot reach ${this.baseUrl} (${cause})`);
    }
    const text = await response.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = (data as { error?: { code?: string; message?: string; details?: Record<string, unknown> } })
        ?.error;
      const code = error?.code ?? '';
      const retryAfter = Number(response.headers.get('retry-after'));
      throw new ApiError(
        kindOf(response.status, code),
        error?.message ?? `${method} ${path}: HTTP ${response.status}`,
        response.status,
        code,
        error?.details ?? {},
        Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
      );
    }
    return data as T;
  }

  me(): Promise<User> {
    return this.request('GET', '/api/me');
  }

  /** Every task the filter selects, following the pages. */
  async listTasks(filter: ListFilter = {}): Promise<Task[]> {
    const tasks: Task[] = [];
    let cursor: string | null | undefined;
    do {
      const params = new URLSearchParams({ limit: '200' });
      for (const [name, value] of Object.entries(filter)) {
        if (value) params.set(name, String(value));
      }
      if (cursor) params.set('cursor', cursor);
      const page = await this.request<TaskPage>('GET', `/api/tasks?${params}`);
      tasks.push(...page.tasks);
      cursor = page.next_cursor;
    } while (cursor);
    return tasks;
  }

  getTask(id: string): Promise<Task> {
    return this.request('GET', `/api/tasks/${encodeURIComponent(id)}`);
  }

  /** Creates a task; the Idempotency-Key makes a retried request create it once. */
  createTask(task: NewTask, idempotencyKey: string = randomUUID()): Promise<Task> {
    return this.request('POST', '/api/tasks', task, { 'Idempotency-Key': idempotencyKey });
  }

  setStatus(id: string, status: Status, version: number, comment?: string): Promise<Task> {
    const body = comment ? { status, comment } : { status };
    return this.request('PUT', `/api/tasks/${encodeURIComponent(id)}/status`, body, { 'If-Match': ifMatch(version) });
  }

  /** Comments on a task. A comment never overwrites anything; the version read is sent all the same. */
  addComment(id: string, comment: string, version?: number): Promise<Comment> {
    const headers: Record<string, string> = version ? { 'If-Match': ifMatch(version) } : {};
    return this.request('POST', `/api/tasks/${encodeURIComponent(id)}/comments`, { comment }, headers);
  }

  comments(id: string): Promise<Comment[]> {
    return this.request('GET', `/api/tasks/${encodeURIComponent(id)}/comments`);
  }

  history(id: string): Promise<HistoryRow[]> {
    return this.request('GET', `/api/tasks/${encodeURIComponent(id)}/history`);
  }

  /** Claims a task for the caller (servers with claims). */
  claim(id: string, version: number): Promise<ClaimResult> {
    return this.request<ClaimResult | Task>('POST', `/api/tasks/${encodeURIComponent(id)}/claim`, {}, {
      'If-Match': ifMatch(version),
    }).then(claimResult);
  }

  /** Gives a claimed task back (servers with claims). */
  release(id: string, version: number): Promise<ClaimResult> {
    return this.request<ClaimResult | Task>('POST', `/api/tasks/${encodeURIComponent(id)}/release`, {}, {
      'If-Match': ifMatch(version),
    }).then(claimResult);
  }

  /** Claims the next ready task, in `repository` when given (servers with claims). */
  claimNext(repository?: string): Promise<ClaimResult> {
    return this.request<ClaimResult | Task>('POST', '/api/tasks/claim', repository ? { repository } : {}).then(
      claimResult,
    );
  }

  /** A short-lived ticket that opens the event stream; null on a server without tickets. */
  async streamTicket(): Promise<string | null> {
    try {
      const answer = await this.request<{ ticket: string }>('POST', '/api/tasks/stream/ticket');
      return answer.ticket;
    } catch (err) {
      if (err instanceof ApiError && (err.kind === 'missing' || err.status === 404)) return null;
      throw err;
    }
  }

  /** What this server offers beyond the base API, from its OpenAPI document's paths. */
  async features(): Promise<Features> {
    try {
      const doc = await this.request<{ paths?: Record<string, unknown> }>('GET', '/api/openapi.json');
      const paths = Object.keys(doc?.paths ?? {});
      return { claims: paths.includes('/api/tasks/{id}/claim') && paths.includes('/api/tasks/claim') };
    } catch (err) {
      if (err instanceof ApiError && err.kind !== 'offline') return { claims: false };
      throw err;
    }
  }
}

/** A claim route answers `{task, reason}`; a bare task is read as the claimed task. */
function claimResult(answer: ClaimResult | Task): ClaimResult {
  if (answer && typeof answer === 'object' && 'id' in answer && 'title' in answer) return { task: answer as Task };
  return answer as ClaimResult;
}
