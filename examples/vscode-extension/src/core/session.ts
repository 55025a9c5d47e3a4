/** One signed-in connection to `serve`: who the user is, what the server offers, the tasks in scope loaded and
 * kept live from the event stream (opened first, so nothing committed during the load is missed). */

import { ApiError, TaskApi } from './api';
import { EventStream, type StreamState } from './sse';
import { TaskState, type Change, type Scope } from './state';
import type { Features, TaskEvent, User } from './types';

export interface SessionHandlers {
  /** The tasks changed (a load, or applied events). */
  onChange(changes: Change[] | 'reload'): void;
  /** Every event as it arrives (after it was applied). */
  onEvent?(event: TaskEvent): void;
  onState?(state: StreamState, error?: ApiError): void;
  /** A load failed (the stream keeps retrying by itself). */
  onError?(error: ApiError): void;
}

export class Session {
  me: User | null = null;
  features: Features = { claims: false };
  readonly state: TaskState;
  readonly stream: EventStream;
  private loading: Promise<void> | null = null;
  private queued: TaskEvent[] | null = null;
  private firstLoad!: () => void;
  /** Settles once the first load after the stream opened is done (or the session stopped). */
  readonly whenLoaded: Promise<void> = new Promise((resolve) => (this.firstLoad = resolve));

  constructor(
    readonly api: TaskApi,
    scope: Scope,
    private readonly handlers: SessionHandlers,
    streamOptions: { initialBackoffMs?: number; maxBackoffMs?: number; lastEventId?: string } = {},
  ) {
    this.state = new TaskState(scope);
    this.stream = new EventStream(
      api,
      {
        onOpen: () => this.loadOnce(),
        onEvent: (event) => this.receive(event),
        onResync: () => this.reload(),
        onState: (state, error) => handlers.onState?.(state, error),
      },
      streamOptions,
    );
  }

  /** Who the user is and what the server offers; then the stream opens and the list loads. Throws when the
   * server cannot be reached or refuses the token (the caller shows it). */
  async start(): Promise<void> {
    this.me = await this.api.me();
    this.features = await this.api.features();
    this.stream.start();
  }

  async stop(): Promise<void> {
    this.firstLoad();
    await this.stream.stop();
  }

  get status(): StreamState {
    return this.stream.state;
  }

  /** Changes the repository in view and reloads. */
  async setScope(scope: Scope): Promise<void> {
    this.state.scope = scope;
    await this.reload();
  }

  /** The first open loads; later reopens resume with Last-Event-ID and need no load. */
  private loaded = false;
  private async loadOnce(): Promise<void> {
    if (this.loaded) return;
    await this.reload();
  }

  /** Loads the tasks in scope; events arriving meanwhile are applied after (older versions are ignored). */
  reload(): Promise<void> {
    if (this.loading) return this.loading;
    this.queued = [];
    this.loading = (async () => {
      try {
        const tasks = await this.api.listTasks(this.state.scope.repository ? { repository: this.state.scope.repository } : {});
        this.state.replaceAll(tasks);
        this.loaded = true;
      } catch (err) {
        this.handlers.onError?.(err instanceof ApiError ? err : new ApiError('other', (err as Error).message));
      } finally {
        const queued = this.queued ?? [];
        this.queued = null;
        this.loading = null;
        for (const event of queued) this.state.apply(event);
        this.handlers.onChange('reload');
        this.firstLoad();
      }
    })();
    return this.loading;
  }

  private receive(event: TaskEvent): void {
    if (this.queued) {
      this.queued.push(event);
    } else {
      const change = this.state.apply(event);
      if (change) this.handlers.onChange([change]);
    }
    this.handlers.onEvent?.(event);
  }
}
