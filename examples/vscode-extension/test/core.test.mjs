// The core modules (REST client, event-stream reader, reducer) under plain Node against a real `task-mcp serve`.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { McpClient, Serve, Store, core, eventually, storeKind } from './harness.mjs';

const { ApiError, TaskApi } = core.api;
const { EventStream } = core.sse;
const { Session } = core.session;

describe(`core against serve (${storeKind()})`, () => {
  let store;
  let serve;
  const cleanups = [];

  beforeEach(async () => {
    store = await Store.create();
    serve = await new Serve(store).start();
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await serve.stop();
    await store.dispose();
  });

  test('lists tasks with filters, following pages', async () => {
    const api = serve.api();
    await api.createTask({ title: 'Web one', repository: 'web', assignee_id: 'me', priority: 'high' });
    await api.createTask({ title: 'Web two', repository: 'web', priority: 'low' });
    await api.createTask({ title: 'Api one', repository: 'api', status: 'blocked' });
    assert.equal((await api.listTasks()).length, 3);
    assert.deepEqual((await api.listTasks({ repository: 'web' })).map((t) => t.title).sort(), ['Web one', 'Web two']);
    assert.deepEqual((await api.listTasks({ assignee: 'me' })).map((t) => t.title), ['Web one']);
    assert.deepEqual((await api.listTasks({ status: 'blocked' })).map((t) => t.title), ['Api one']);
    assert.deepEqual((await api.listTasks({ priority: 'low' })).map((t) => t.title), ['Web two']);
    assert.deepEqual((await api.listTasks({ q: 'Api' })).map((t) => t.title), ['Api one']);
    // More than a page (200): every task, once.
    // Eight at a time: the listing is under test here, not how the server sheds a burst of 205 writes.
    for (let start = 0; start < 205; start += 8) {
      const batch = Array.from({ length: Math.min(8, 205 - start) }, (_, i) => start + i);
      await Promise.all(batch.map((i) => api.createTask({ title: `Bulk ${i}`, repository: 'bulk' })));
    }
    const bulk = await api.listTasks({ repository: 'bulk' });
    assert.equal(bulk.length, 205);
    assert.equal(new Set(bulk.map((t) => t.id)).size, 205);
  });

  test('creates a task once per idempotency key', async () => {
    const api = serve.api();
    const a = await api.createTask({ title: 'Once', priority: 'urgent', description: 'body' }, 'key-1');
    const b = await api.createTask({ title: 'Once', priority: 'urgent', description: 'body' }, 'key-1');
    assert.equal(a.id, b.id);
    assert.equal(a.priority, 'urgent');
    assert.equal((await api.listTasks()).length, 1);
  });

  test('sets the status with If-Match; a stale version gets 412 with whose change won', async () => {
    const mine = serve.api();
    const bob = serve.api(await store.token('bob@example.com'));
    const task = await mine.createTask({ title: 'Contended' });
    const bobs = await bob.setStatus(task.id, 'blocked', task.version, 'waiting on review');
    assert.equal(bobs.version, 2);
    await assert.rejects(mine.setStatus(task.id, 'in_progress', task.version), (err) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.status, 412);
      assert.equal(err.kind, 'conflict');
      assert.equal(err.current.version, 2);
      assert.equal(err.current.status, 'blocked');
      assert.equal(err.current.updated_by, 'bob@example.com');
      return true;
    });
    // Retried on top of the current version, it goes through.
    const retried = await mine.setStatus(task.id, 'in_progress', 2);
    assert.equal(retried.status, 'in_progress');
    assert.equal(retried.version, 3);
  });

  test('comments, history and the Markdown preview', async () => {
    const api = serve.api();
    const task = await api.createTask({ title: 'Talk *about* it', description: 'Line one\n[link](http://x)' });
    await api.addComment(task.id, 'first thought', task.version);
    await api.setStatus(task.id, 'in_progress', task.version, 'on it');
    const comments = await api.comments(task.id);
    assert.deepEqual(comments.map((c) => [c.comment, c.author]), [['first thought', 'alice@example.com']]);
    const history = await api.history(task.id);
    assert.ok(history.some((h) => h.field_changed === 'status' && h.new_value === 'in_progress'));
    const md = core.markdown.taskMarkdown(await api.getTask(task.id), comments, history);
    assert.match(md, /^# (T\\-\d+ )?Talk \\\*about\\\* it/);
    assert.match(md, /\\\[link\\\]\\\(http:\/\/x\\\)/, 'task text is shown literally');
    assert.match(md, /> first thought/);
    assert.match(md, /status: not\\_started → in\\_progress — on it/);
  });

  test('errors are classified: 401, server down, missing route', async () => {
    await assert.rejects(serve.api('not-a-token').me(), (err) => err.kind === 'unauthorized' && err.status === 401);
    await assert.rejects(serve.api().getTask('00000000-0000-0000-0000-000000000000'), (err) => err.kind === 'not_found');
    const down = new TaskApi({ baseUrl: 'http://127.0.0.1:9', token: serve.token });
    await assert.rejects(down.me(), (err) => err.kind === 'offline');
    const features = await serve.api().features();
    assert.equal(typeof features.claims, 'boolean');
  });

  test('the stream applies events to the state: create, update, move out of scope, delete', async () => {
    const changes = [];
    const session = new Session(serve.api(), { repository: 'web' }, { onChange: (c) => changes.push(c) });
    cleanups.push(() => session.stop());
    const before = await serve.api().createTask({ title: 'Before', repository: 'web' });
    await session.start();
    await session.whenLoaded;
    assert.ok(session.state.tasks.has(before.id), 'the load sees what existed');
    const bob = serve.api(await store.token('bob@example.com'));
    const a = await bob.createTask({ title: 'Live A', repository: 'web' });
    await bob.createTask({ title: 'Elsewhere', repository: 'api' });
    await eventually(() => session.state.tasks.get(a.id), { what: 'Live A' });
    const moved = await bob.setStatus(a.id, 'in_progress', a.version);
    await eventually(() => session.state.tasks.get(a.id)?.status === 'in_progress', { what: 'status applied' });
    assert.equal(session.state.groups().get('in_progress')[0].id, a.id);
    // Moved to another repository: it leaves the view.
    await bob.request('PATCH', `/api/tasks/${a.id}`, { repository: 'api' }, { 'If-Match': `"${moved.version}"` });
    await eventually(() => !session.state.tasks.has(a.id), { what: 'moved out of scope' });
    await bob.request('DELETE', `/api/tasks/${before.id}`, undefined, { 'If-Match': `"${before.version}"` });
    await eventually(() => !session.state.tasks.has(before.id), { what: 'deleted task removed' });
    assert.ok(![...session.state.tasks.values()].some((t) => t.repository !== 'web'));
    assert.ok(changes.some((c) => Array.isArray(c) && c.some((x) => x.kind === 'remove')));
  });

  test('a serve restart mid-stream: the reader resumes with Last-Event-ID, no gap, no duplicate', async () => {
    const seen = [];
    const states = [];
    const stream = new EventStream(serve.api(), {
      onEvent: (event) => seen.push(event.seq),
      onResync: () => assert.fail('no resync expected'),
      onState: (state) => states.push(state),
    });
    cleanups.push(() => stream.stop());
    stream.start();
    await eventually(() => stream.state === 'live', { what: 'live' });
    const api = serve.api();
    for (let i = 0; i < 3; i++) await api.createTask({ title: `before ${i}` });
    await eventually(() => seen.length === 3, { what: 'the first events' });
    await serve.stop();
    // While serve is down an agent keeps working over stdio on the same store.
    const agent = new McpClient(store);
    await agent.initialize();
    for (let i = 0; i < 3; i++) await agent.call('create_task', { title: `while down ${i}` });
    await agent.close();
    await eventually(() => stream.state !== 'live', { what: 'the drop noticed' });
    await serve.start();
    for (let i = 0; i < 2; i++) await serve.api().createTask({ title: `after ${i}` });
    await eventually(() => seen.length >= 8, { timeout: 15000, what: 'every event' });
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8], 'each event once, in order');
    assert.equal(stream.lastEventId, '8');
    assert.ok(states.includes('reconnecting') || states.includes('offline'));
    assert.equal(stream.state, 'live');
  });

  test('resync: a position the server cannot replay reloads the list, then follows', async () => {
    const api = serve.api();
    await api.createTask({ title: 'Existing' });
    let resyncs = 0;
    const session = new Session(api, {}, { onChange: () => {} }, { lastEventId: '999999' });
    cleanups.push(() => session.stop());
    const reload = session.reload.bind(session);
    session.reload = () => {
      resyncs++;
      return reload();
    };
    await session.start();
    // The position moves to the seq the resync named once the reload is done.
    await eventually(() => session.stream.lastEventId === '1', { what: 'the resync handled' });
    assert.ok(resyncs >= 2, 'the load at open and the reload of the resync');
    assert.equal(session.state.tasks.size, 1);
    const next = await api.createTask({ title: 'After resync' });
    await eventually(() => session.state.tasks.has(next.id), { what: 'following after the resync' });
    assert.equal(session.stream.lastEventId, '2');
  });

  test('a refused token: the stream says Offline with the 401, once', async () => {
    const states = [];
    const stream = new EventStream(serve.api('expired'), {
      onEvent: () => {},
      onResync: () => {},
      onState: (state, error) => states.push([state, error?.kind]),
    }, { maxBackoffMs: 60000 });
    cleanups.push(() => stream.stop());
    stream.start();
    await eventually(() => states.length > 0, { what: 'a state' });
    assert.deepEqual(states[0], ['offline', 'unauthorized']);
  });

  test('claims when the server has them', async (t) => {
    const api = serve.api();
    const features = await api.features();
    if (!features.claims) {
      await assert.rejects(api.claimNext(), (err) => err instanceof ApiError && ['missing', 'not_found'].includes(err.kind));
      t.diagnostic('this server has no claim routes: the extension hides the claim commands');
      return;
    }
    const task = await api.createTask({ title: 'Claim me' });
    const claimed = await api.claim(task.id, task.version);
    assert.equal(claimed.task.id, task.id);
    assert.equal(claimed.task.status, 'in_progress');
    const released = await api.release(claimed.task.id, claimed.task.version);
    assert.equal(released.task?.status ?? 'not_started', 'not_started');
    const next = await api.claimNext();
    assert.equal(next.task?.id, task.id);
  });
});
