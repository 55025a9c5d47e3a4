// The pure parts of the core modules: sign-in input, the workspace's repository, SSE framing, the reducer's
// version rule, the hand-over rule and the burst summary. No server needed.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { core, eventually } from './harness.mjs';

const task = (over = {}) => ({
  id: 't1', title: 'T', description: null, status: 'not_started', priority: 'medium', complexity: 'medium',
  assignee_id: null, assignee_email: null, repository: 'web', created_by: 'a@x', updated_by: 'a@x',
  created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z', version: 1, ...over,
});

test('sign-in input: the dashboard link, a bare token, nothing usable', () => {
  const { parseSignIn, tokenSubject } = core.auth;
  assert.deepEqual(parseSignIn(' http://127.0.0.1:8000/#token=abc.def.ghi '), { token: 'abc.def.ghi', serverUrl: 'http://127.0.0.1:8000' });
  assert.deepEqual(parseSignIn('https://tasks.example.com/#token=t1'), { token: 't1', serverUrl: 'https://tasks.example.com' });
  assert.deepEqual(parseSignIn('#token=t2'), { token: 't2' });
  assert.deepEqual(parseSignIn('tmk_abcdef'), { token: 'tmk_abcdef' });
  assert.equal(parseSignIn('http://127.0.0.1:8000/'), null);
  assert.equal(parseSignIn('two words'), null);
  assert.equal(parseSignIn(''), null);
  const jwt = `x.${Buffer.from(JSON.stringify({ sub: 'alice@example.com' })).toString('base64url')}.y`;
  assert.equal(tokenSubject(jwt), 'alice@example.com');
  assert.equal(tokenSubject('tmk_abcdef'), null);
});

test('the workspace repository: the git remote name, a worktree, else the folder name', () => {
  const { detectRepository, nameFromRemote } = core.repository;
  assert.equal(nameFromRemote('git@github.com:team/web.git'), 'web');
  assert.equal(nameFromRemote('https://github.com/team/api/'), 'api');
  assert.equal(nameFromRemote('/srv/git/tools.git'), 'tools');
  const root = mkdtempSync(path.join(tmpdir(), 'task-mcp-repo-'));
  try {
    const main = path.join(root, 'checkout');
    mkdirSync(path.join(main, '.git', 'worktrees', 'wt'), { recursive: true });
    writeFileSync(path.join(main, '.git', 'config'),
      '[remote "upstream"]\n\turl = git@h:o/upstream-name.git\n[remote "origin"]\n\turl = https://h/o/web.git\n[branch "main"]\n\tremote = origin\n');
    assert.equal(detectRepository(main), 'web', 'origin first');
    const wt = path.join(root, 'wt');
    mkdirSync(wt);
    writeFileSync(path.join(wt, '.git'), `gitdir: ${path.join(main, '.git', 'worktrees', 'wt')}\n`);
    writeFileSync(path.join(main, '.git', 'worktrees', 'wt', 'commondir'), '../..\n');
    assert.equal(detectRepository(wt), 'web', 'a worktree reads its main checkout');
    const plain = path.join(root, 'just-a-folder');
    mkdirSync(plain);
    assert.equal(detectRepository(plain), 'just-a-folder');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('SSE framing: events split across chunks, comments, CRLF, multi-line data', () => {
  const { parseFrames } = core.sse;
  let { frames, rest } = parseFrames(': connected\n\nid: 1\nevent: task_created\ndata: {"a":');
  assert.deepEqual(frames, []);
  ({ frames, rest } = parseFrames(`${rest}1}\r\n\r\n: heartbeat\n\nid: 2\nevent: resync\ndata: x\ndata: y\n\n`));
  assert.deepEqual(frames, [{ id: '1', event: 'task_created', data: '{"a":1}' }, { id: '2', event: 'resync', data: 'x\ny' }]);
  assert.equal(rest, '');
});

test('the reducer: newer versions win, deletions stick, scope and grouping', () => {
  const { TaskState } = core.state;
  const state = new TaskState({ repository: 'web' });
  state.replaceAll([task({ id: 'a', priority: 'low' }), task({ id: 'b', repository: 'api' })]);
  assert.deepEqual([...state.tasks.keys()], ['a']);
  const ev = (t, type = 'task_updated') => ({ type, task_id: t.id, task: t, timestamp: '', seq: 0, actor: 'x' });
  assert.equal(state.apply(ev(task({ id: 'a', version: 1 }))), null, 'a replay of what is held changes nothing');
  assert.equal(state.apply(ev(task({ id: 'a', version: 2, status: 'in_progress' }))).kind, 'upsert');
  assert.equal(state.apply(ev(task({ id: 'a', version: 1 }))), null, 'an older copy does not go back');
  state.apply(ev(task({ id: 'c', version: 1, priority: 'urgent', status: 'in_progress', assignee_id: 'me' })));
  assert.deepEqual(state.groups().get('in_progress').map((t) => t.id), ['c', 'a'], 'urgent first');
  assert.deepEqual(state.groups('me').get('in_progress').map((t) => t.id), ['c']);
  assert.equal(state.openCount('me'), 1);
  assert.equal(state.apply(ev(task({ id: 'c', version: 2, deleted_at: 'now' }), 'task_deleted')).kind, 'remove');
  assert.equal(state.apply(ev(task({ id: 'c', version: 1 }))), null, 'a deleted task does not come back');
  assert.equal(state.apply(ev(task({ id: 'a', version: 3, repository: 'api' }))).kind, 'remove', 'moved out of scope');
  assert.equal(state.tasks.size, 0);
});

test('hand-overs: someone else assigning me notifies; mine and others’ do not; a burst is one summary', async () => {
  const { HandOverNotifier, isHandedToMe } = core.notify;
  const me = { id: 'u-me', email: 'Alice@Example.com' };
  const ev = (over, actor = 'agent@example.com', type = 'task_assigned') =>
    ({ type, task_id: over.id ?? 't1', task: task({ assignee_id: 'u-me', ...over }), timestamp: '', seq: 1, actor });
  assert.ok(isHandedToMe(ev({}), me));
  assert.ok(!isHandedToMe(ev({}, 'alice@example.com'), me), 'my own change');
  assert.ok(!isHandedToMe(ev({ assignee_id: 'u-bob' }), me), 'someone else’s task');
  assert.ok(!isHandedToMe(ev({}, 'agent@example.com', 'task_updated'), me), 'not a hand-over');
  const notices = [];
  const notifier = new HandOverNotifier(() => me, (n) => notices.push(n), 50);
  notifier.observe(ev({ id: 'a', title: 'A' }));
  await eventually(() => notices.length === 1);
  assert.equal(notices[0].kind, 'single');
  assert.equal(notices[0].created, true);
  for (const id of ['b', 'c', 'd', 'c']) notifier.observe(ev({ id, title: id }, id === 'd' ? 'bob@example.com' : 'agent@example.com'));
  await eventually(() => notices.length === 2);
  assert.equal(notices[1].kind, 'summary');
  assert.deepEqual(notices[1].tasks.map((t) => t.id), ['b', 'd', 'c']);
  assert.deepEqual(notices[1].actors, ['agent@example.com', 'bob@example.com']);
  notifier.dispose();
});
