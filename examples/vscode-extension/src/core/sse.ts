/** The event-stream reader: follows `GET /api/tasks/stream`, and after any drop comes back with `Last-Event-ID`
 * so that nothing is missed and nothing is delivered twice; hands `resync` to its owner (reload, then follow). */

import { ApiError, TaskApi } from './api';
import type { TaskEvent } from './types';

/** Where the reader stands, as a status bar shows it. */
export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'offline';

export interface StreamHandlers {
  /** An event, in `seq` order. Called once per event, also across reconnects. */
  onEvent(event: TaskEvent): void;
  /** The server cannot replay what was missed: reload everything, then the stream goes on from `latestSeq`. */
  onResync(latestSeq: number): Promise<void> | void;
  /** The stream answered (before any event): a good moment to load the list without a gap. */
  onOpen?(): Promise<void> | void;
  onState?(state: StreamState, error?: ApiError): void;
}

export interface StreamOptions {
  /** Resume after this event id (e.g. one kept from an earlier session). */
  lastEventId?: string;
  /** Only events of tasks assigned to this user ("me", id or email). */
  userId?: string;
  /** Only events of these repositories. */
  repositories?: string[];
  /** First wait after a drop; doubles up to `maxBackoffMs`. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Failed attempts in a row after which the state says Offline rather than Reconnecting. */
  offlineAfter?: number;
}

/** One parsed SSE block. */
interface Frame {
  id?: string;
  event?: string;
  data: string;
}

/** Splits a text buffer into complete SSE blocks; returns the frames and what is left over. */
export function parseFrames(buffer: string): { frames: Frame[]; rest: string } {
  const frames: Frame[] = [];
  let text = buffer.replace(/\r\n?/g, '\n');
  let end: number;
  while ((end = text.indexOf('\n\n')) >= 0) {
    const block = text.slice(0, end);
    text = text.slice(end + 2);
    const frame: Frame = { data: '' };
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue; // a comment: heartbeat or hello
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'id') frame.id = value;
      else if (field === 'event') frame.event = value;
      else if (field === 'data') data.push(value);
    }
    frame.data = data.join('\n');
    if (frame.event !== undefined || frame.id !== undefined || data.length) frames.push(frame);
  }
  return { frames, rest: text };
}

export class EventStream {
  /** The `id:` of the last frame handled: where a reconnect resumes. */
  lastEventId: string | undefined;
  state: StreamState = 'connecting';
  private stopped = false;
  private abort: AbortController | null = null;
  private wake: (() => void) | null = null;
  private running: Promise<void> | null = null;
  private readonly options: Required<Omit<StreamOptions, 'lastEventId' | 'userId' | 'repositories'>>;

  constructor(
    private readonly api: TaskApi,
    private readonly handlers: StreamHandlers,
    private readonly filter: StreamOptions = {},
  ) {
    this.lastEventId = filter.lastEventId;
    this.options = {
      initialBackoffMs: filter.initialBackoffMs ?? 250,
      maxBackoffMs: filter.maxBackoffMs ?? 15000,
      offlineAfter: filter.offlineAfter ?? 3,
    };
  }

  start(): void {
    if (!this.running) this.running = this.run();
  }

  /** Ends the stream for good; resolves when the reader has stopped. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    this.wake?.();
    await this.running;
  }

  /** Skips the current wait before a reconnect (e.g. the user asked to retry, or signed in again). */
  retryNow(): void {
    this.wake?.();
  }

  private setState(state: StreamState, error?: ApiError): void {
    if (this.state === state && !error) return;
    this.state = state;
    this.handlers.onState?.(state, error);
  }

  private async run(): Promise<void> {
    let backoff = this.options.initialBackoffMs;
    let failures = 0;
    while (!this.stopped) {
      let error: ApiError | undefined;
      try {
        const opened = await this.follow();
        if (opened) {
          failures = 0;
          backoff = this.options.initialBackoffMs;
        }
      } catch (err) {
        error = err instanceof ApiError ? err : new ApiError('offline', (err as Error).message);
      }
      if (this.stopped) break;
      failures += 1;
      // A refused token will not get better by retrying fast: wait long, and say Offline at once.
      const refused = error && (error.kind === 'unauthorized' || error.kind === 'forbidden');
      this.setState(refused || failures >= this.options.offlineAfter ? 'offline' : 'reconnecting', error);
      const wait = refused ? this.options.maxBackoffMs : error?.retryAfterSeconds ? error.retryAfterSeconds * 1000 : backoff;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
      backoff = Math.min(backoff * 2, this.options.maxBackoffMs);
    }
  }

  /** One connection: returns true if it was opened (and then ended), throws if it could not be opened. */
  private async follow(): Promise<boolean> {
    // A ticket keeps the sign-in token out of the URL; servers without tickets take the token itself.
    const ticket = (await this.api.streamTicket()) ?? this.api.token;
    const params = new URLSearchParams({ access_token: ticket });
    if (this.filter.userId) params.set('user_id', this.filter.userId);
    if (this.filter.repositories?.length) params.set('repositories', this.filter.repositories.join(','));
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    if (this.lastEventId) headers['Last-Event-ID'] = this.lastEventId;
    this.abort = new AbortController();
    let response: Response;
    try {
      response = await fetch(`${this.api.baseUrl}/api/tasks/stream?${params}`, { headers, signal: this.abort.signal });
    } catch (err) {
      if (this.stopped) return false;
      throw new ApiError('offline', `cannot reach ${this.api.baseUrl} (${(err as Error).message})`);
    }
    if (!response.ok || !response.body) {
      // Read the error the same way as any other request's.
      const text = await response.text().catch(() => '');
      let message = `the event stream answered HTTP ${response.status}`;
      let code = '';
      try {
        const body = JSON.parse(text);
        message = body?.error?.message ?? message;
        code = body?.error?.code ?? '';
      } catch {
        /* not JSON */
      }
      const kind =
        response.status === 401 ? 'unauthorized' : response.status === 403 ? 'forbidden' : response.status === 429 ? 'rate_limited' : 'unavailable';
      const retryAfter = Number(response.headers.get('retry-after'));
      throw new ApiError(kind, message, response.status, code, {}, retryAfter > 0 ? retryAfter : null);
    }
    await this.handlers.onOpen?.();
    this.setState('live');
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const { frames, rest } = parseFrames(buffer);
        buffer = rest;
        for (const frame of frames) await this.handle(frame);
      }
    } catch {
      // The connection dropped (server restart, network): resume below.
    } finally {
      this.abort = null;
    }
    return true;
  }

  private async handle(frame: Frame): Promise<void> {
    if (frame.event === 'resync') {
      const latest = Number(frame.id ?? JSON.parse(frame.data || '{}').seq ?? 0);
      await this.handlers.onResync(latest);
    } else if (frame.event && frame.data) {
      let event: TaskEvent | null = null;
      try {
        event = JSON.parse(frame.data) as TaskEvent;
      } catch {
        event = null;
      }
      if (event) this.handlers.onEvent(event);
    }
    // The position moves only once the frame was handled, so a drop mid-way replays it.
    if (frame.id) this.lastEventId = frame.id;
  }
}
