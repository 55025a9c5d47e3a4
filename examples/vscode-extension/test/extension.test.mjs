// The extension's `activate()` against a stand-in `vscode` module, a real `task-mcp serve` and a real stdio MCP
// agent: the end-to-end flows (an agent hands a task → a notification and the item in the tree; the extension
// changes a task → the agent sees it), the 412 path, errors shown once, and package.json against what the
// code registers.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { HERE, McpClient, Serve, Store, eventually, require, storeKind } from './harness.mjs';
import { createVscode, install } from './vscode-stub.mjs';

const EXTENSION = path.join(HERE, 'out', 'extension.js');

/** A workspace checked out from a remote named `web`. */
function workspace() {
  const dir = mkdtempSync(path.join(tmpdir(), 'task-mcp-ws-'));
  mkdirSync(path.join(dir, '.git'));
  writeFileSync(path.join(dir, '.git', 'config'), '[core]\n\tbare = false\n[remote "origin"]\n\turl = git@example.com:team/web.git\n');
  return dir;
}

/** Loads the extension against a fresh stand-in and activates it. */
async function activate({ settings = {}, token, folder } = {}) {
  const stub = createVscode({ settings, workspaceFolder: folder });
  const uninstall = install(stub.vscode);
  delete require.cache[EXTENSION];
  const extension = require(EXTENSION);
  if (token) await stub.context.secrets.store('taskMcp.token', token);
  const ext = await extension.activate(stub.context);
  await ext.ready;
  const dispose = async () => {
    for (const d of stub.context.subscriptions) await d.dispose?.();
    await extension.deactivate();
    uninstall();
  };
  return { ...stub, ext, dispose };
}

/** The tree as the view would show it: [group label, [task labels]]. */
/** The tree as [group label, [task titles]]: a task's label leads with its key (`WEB-2 For me`). */
function treeOf(stub) {
  const view = stub.record.treeViews.get('taskMcp.tasks');
  return view.provider.getChildren().map((group) => [
    view.provider.getTreeItem(group).label,
    view.provider.getChildren(group).map((node) => {
      const { label } = view.provider.getTreeItem(node);
      assert.match(label, /^[A-Z0-9]{1,6}-\d+ /, 'a task is shown with its key');
      return label.replace(/^[A-Z0-9]{1,6}-\d+ /, '');
    }),
  ]);
}

describe(`extension end to end (${storeKind()})`, () => {
  let store;
  let serve;
  let folder;
  let agent;
  let active;

  beforeEach(async () => {
    store = await Store.create();
    serve = await new Serve(store).start();
    folder = workspace();
    agent = new McpClient(store, { user: 'agent@example.com' });
    await agent.initialize();
  });

  afterEach(async () => {
    await active?.dispose();
    active = null;
    await agent.close();
    await serve.stop();
    await store.dispose();
    rmSync(folder, { recursive: true, force: true });
  });

  test('an agent creates a task for me over stdio MCP: a notification within 2 s and the item in the tree', async () => {
    active = await activate({ settings: { 'taskMcp.serverUrl': serve.base }, token: serve.token, folder });
    const { record, answers } = active;
    assert.equal(active.ext.repository(), 'web', 'the repository comes from the git remote');
    await eventually(() => record.statusBar.at(-1)?.includes('Live'), { what: 'Live in the status bar' });
    assert.match(record.statusBar.at(-1), /0 · Live/);
    const refreshes = record.treeRefreshes;

    answers.message.push(undefined); // the notification is left unanswered
    const started = Date.now();
    const created = await agent.call('create_task', {
      title: 'Fix the login redirect', assignee_id: 'alice@example.com', repository: 'web', priority: 'high',
    });
    const notice = await eventually(
      () => record.messages.find((m) => m.level === 'info' && m.text.includes('Fix the login redirect')),
      { timeout: 2000, what: 'the notification' },
    );
    assert.ok(notice.at - started < 2000, `notified after ${notice.at - started} ms`);
    assert.match(notice.text, /agent@example\.com created “(?:[A-Z0-9]+-\d+ )?Fix the login redirect” for you/);
    assert.deepEqual(notice.actions, ['Open', 'Start']);
    assert.ok(record.treeRefreshes > refreshes, 'the tree was refreshed');
    assert.deepEqual(treeOf(active), [['Not started (1)', ['Fix the login redirect']]]);
    await eventually(() => /1 · Live/.test(record.statusBar.at(-1)), { what: 'my open count in the status bar' });

    // Tasks of another repository stay out of the view, but a hand-over is still announced.
    answers.message.push(undefined);
    await agent.call('create_task', { title: 'Elsewhere', assignee_id: 'alice@example.com', repository: 'api' });
    await eventually(() => record.messages.some((m) => m.text.includes('Elsewhere')), { timeout: 2000, what: 'notice' });
    assert.deepEqual(treeOf(active), [['Not started (1)', ['Fix the login redirect']]]);

    // Reassigned to me later: "assigned", not "created".
    answers.message.push(undefined);
    const loose = await agent.call('create_task', { title: 'Unowned', repository: 'web' });
    await agent.call('update_task', { task_id: loose.id ?? loose.task?.id, assignee_id: 'alice@example.com' });
    const assigned = await eventually(() => record.messages.find((m) => m.text.includes('Unowned')), { timeout: 2000, what: 'notice' });
    assert.match(assigned.text, /agent@example\.com assigned “(?:[A-Z0-9]+-\d+ )?Unowned” to you/);

    // The preview: the task as Markdown.
    await record.commands.get('taskMcp.openTask')(created.id ?? created.task?.id);
    assert.match(record.previews.at(-1).text, /^# (?:[A-Z0-9]+\\-\d+ )?Fix the login redirect/);
  });

  test('my own changes do not notify; a burst is summarised; Start sets in progress', async () => {
    active = await activate({ settings: { 'taskMcp.serverUrl': serve.base }, token: serve.token, folder });
    const { record, answers } = active;
    await serve.api().createTask({ title: 'Mine, by me', assignee_id: 'me', repository: 'web' });
    // A burst: five hand-overs at once become one summary.
    answers.message.push(undefined);
    await Promise.all([1, 2, 3, 4, 5].map((i) =>
      agent.call('create_task', { title: `Burst ${i}`, assignee_id: 'alice@example.com', repository: 'web' })));
    const summary = await eventually(() => record.messages.find((m) => /5 tasks were handed to you/.test(m.text)),
      { timeout: 2000, what: 'the summary' });
    assert.match(summary.text, /by agent@example\.com/);
    assert.equal(record.messages.filter((m) => m.level === 'info').length, 1, 'one message for the burst, none for mine');
    await eventually(() => active.ext.session.state.tasks.size === 6, { what: 'all in the tree' });

    // A single hand-over answered with Start: the task goes in progress, the agent sees it.
    answers.message.push('Start');
    const task = await agent.call('create_task', { title: 'Start me', assignee_id: 'alice@example.com', repository: 'web' });
    const id = task.id ?? task.task?.id;
    await eventually(async () => (await agent.call('get_task', { task_id: id })).status === 'in_progress'
      || (await agent.call('get_task', { task_id: id })).task?.status === 'in_progress', { timeout: 5000, what: 'started' });
  });

  test('the extension sets a status; the agent sees it over stdio; a lost race offers a retry on top', async () => {
    const created = await agent.call('create_task', { title: 'Ship it', assignee_id: 'alice@example.com', repository: 'web' });
    const id = created.id ?? created.task?.id;
    active = await activate({ settings: { 'taskMcp.serverUrl': serve.base }, token: serve.token, folder });
    const { record, answers } = active;
    assert.ok(active.ext.session.state.tasks.has(id));

    // Set Status from the tree's context menu: pick "In progress".
    answers.quickPick.push((items) => items.find((i) => i.status === 'in_progress'));
    await record.commands.get('taskMcp.setStatus')({ type: 'task', task: active.ext.session.state.tasks.get(id) });
    const seen = await agent.call('get_tasks', { repository: 'web', detail: 'full' });
    const listed = (seen.tasks ?? seen).find((t) => t.id === id);
    assert.equal(listed.status, 'in_progress');

    // The agent changes it while the extension's stream is stopped: the extension's copy is stale.
    await active.ext.session.stream.stop();
    await agent.call('update_task_status', { task_id: id, new_status: 'blocked', comment: 'waiting on CI' });
    answers.quickPick.push((items) => items.find((i) => i.status === 'completed'));
    answers.message.push((entry) => (entry.actions.includes('Retry') ? 'Retry' : undefined));
    await record.commands.get('taskMcp.setStatus')(id);
    const warning = record.messages.find((m) => m.level === 'warning');
    assert.match(warning.text, /agent@example\.com changed “(?:[A-Z0-9]+-\d+ )?Ship it” first \(now Blocked, version 3\)/);
    const after = await agent.call('get_task', { task_id: id });
    assert.equal((after.task ?? after).status, 'completed', 'retried on top of the current version');
    assert.equal((after.task ?? after).version, 4);

    // A comment, and the dashboard link.
    answers.inputBox.push('looks good');
    await record.commands.get('taskMcp.comment')(id);
    const comments = await serve.api().comments(id);
    assert.deepEqual(comments.map((c) => c.comment), ['looks good']);
    await record.commands.get('taskMcp.openInDashboard')(id);
    assert.equal(record.opened.at(-1), `${serve.base}/?task=${id}`);
  });

  test('New Task, toggling "assigned to me", and claims used or declined as the server offers', async () => {
    active = await activate({ settings: { 'taskMcp.serverUrl': serve.base }, token: serve.token, folder });
    const { record, answers } = active;
    answers.inputBox.push('Write the docs', 'All of them');
    answers.quickPick.push((items) => items.find((i) => i.label === 'urgent'));
    await record.commands.get('taskMcp.newTask')();
    const [made] = await serve.api().listTasks({ repository: 'web' });
    assert.deepEqual([made.title, made.priority, made.description], ['Write the docs', 'urgent', 'All of them']);
    await agent.call('create_task', { title: 'For me', assignee_id: 'alice@example.com', repository: 'web' });
    await eventually(() => active.ext.session.state.tasks.size === 2, { what: 'both tasks' });
    await record.commands.get('taskMcp.toggleAssignedToMe')();
    assert.deepEqual(treeOf(active), [['Not started (1)', ['For me']]]);
    assert.equal(record.contexts['taskMcp.mineOnly'], true);
    await record.commands.get('taskMcp.toggleAssignedToMe')();
    assert.equal(treeOf(active)[0][1].length, 2);

    if (active.ext.session.features.claims) {
      answers.message.push(undefined);
      await record.commands.get('taskMcp.claimNext')();
      assert.ok(record.messages.some((m) => /you hold/.test(m.text)));
      assert.equal(record.contexts['taskMcp.claims'], true);
    } else {
      await record.commands.get('taskMcp.claimNext')();
      assert.match(record.messages.at(-1).text, /this server has no claims/);
      assert.equal(record.contexts['taskMcp.claims'], false);
    }
  });

  test('sign in with the dashboard link; a refused token and a server down are each said once, with the fix', async () => {
    active = await activate({ settings: { 'taskMcp.serverUrl': 'http://127.0.0.1:9' }, folder });
    const { record, answers, secrets, settings } = active;
    assert.match(record.statusBar.at(-1), /Sign in/);
    assert.equal(record.contexts['taskMcp.signedIn'], false);

    answers.inputBox.push(serve.link);
    await record.commands.get('taskMcp.signIn')();
    await active.ext.ready;
    assert.equal(secrets.get('taskMcp.token'), serve.token);
    assert.equal(settings['taskMcp.serverUrl'], serve.base, 'the link sets the server address');
    assert.ok(record.messages.some((m) => m.text === 'Task MCP: signed in as alice@example.com.'));
    await eventually(() => /Live/.test(record.statusBar.at(-1)), { what: 'Live' });

    // The server goes away: Reconnecting…/Offline, one error whatever the number of attempts.
    answers.message.push(undefined);
    await serve.stop();
    await eventually(() => /Offline/.test(record.statusBar.at(-1)), { timeout: 10000, what: 'Offline' });
    const down = record.messages.filter((m) => /cannot reach the server/.test(m.text));
    assert.equal(down.length, 1);
    assert.deepEqual(down[0].actions, ['Retry', 'Open Settings']);
    await serve.start();
    active.ext.session.stream.retryNow();
    await eventually(() => /Live/.test(record.statusBar.at(-1)), { timeout: 10000, what: 'Live again' });

    // A token the server refuses: said once, with Sign In.
    answers.message.push(undefined);
    await secrets.set('taskMcp.token', 'expired-token');
    await active.ext.reconnect();
    await active.ext.reconnect();
    const refused = record.messages.filter((m) => /refused the token/.test(m.text));
    assert.equal(refused.length, 1);
    assert.deepEqual(refused[0].actions, ['Sign In']);

    await record.commands.get('taskMcp.signOut')();
    assert.equal(secrets.has('taskMcp.token'), false);
    assert.match(record.statusBar.at(-1), /Sign in/);
  });

  test('too many refused attempts: the 429 is said once, with the wait the server asks', async () => {
    // Failed sign-ins from this address until the server's limiter closes it for a while.
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`${serve.base}/api/me`, { headers: { Authorization: 'Bearer wrong' } });
      if (res.status === 429) break;
    }
    // An expired token kept in the secrets: the server answers 429 rather than 401 now.
    active = await activate({ settings: { 'taskMcp.serverUrl': serve.base }, token: 'expired', folder });
    const { record } = active;
    await active.ext.reconnect();
    const limited = record.messages.filter((m) => /too many requests/.test(m.text));
    assert.equal(limited.length, 1);
    assert.match(limited[0].text, /wait \d+ s/);
    assert.deepEqual(limited[0].actions, ['Retry']);
    assert.match(record.statusBar.at(-1), /Offline/);
  });

  test('TASK_MCP_TOKEN is used when nothing is stored', async () => {
    process.env.TASK_MCP_TOKEN = serve.token;
    try {
      active = await activate({ settings: { 'taskMcp.serverUrl': serve.base, 'taskMcp.repository': 'api' }, folder });
      assert.equal(active.ext.session.me.email, 'alice@example.com');
      assert.equal(active.ext.repository(), 'api', 'the setting overrides the workspace');
    } finally {
      delete process.env.TASK_MCP_TOKEN;
    }
  });
});

describe('package.json', () => {
  const manifest = JSON.parse(readFileSync(path.join(HERE, 'package.json'), 'utf8'));

  test('declares the views, commands, settings and activation events the code registers and uses', async () => {
    const stub = createVscode({});
    const uninstall = install(stub.vscode);
    delete require.cache[EXTENSION];
    const extension = require(EXTENSION);
    try {
      const ext = await extension.activate(stub.context);
      await ext.ready;
      ext.repository();
      ext.serverUrl();
      const { record } = stub;
      const declared = manifest.contributes.commands.map((c) => c.command).sort();
      assert.deepEqual([...record.commands.keys()].sort(), declared, 'commands registered = commands declared');
      const views = Object.values(manifest.contributes.views).flat().map((v) => v.id);
      assert.deepEqual([...record.treeViews.keys()], views);
      const containers = manifest.contributes.viewsContainers.activitybar.map((c) => c.id);
      assert.deepEqual(Object.keys(manifest.contributes.views), containers);
      assert.ok(existsSync(path.join(HERE, manifest.contributes.viewsContainers.activitybar[0].icon)));
      const settings = Object.keys(manifest.contributes.configuration.properties).sort();
      assert.deepEqual([...record.configRead].sort(), settings, 'settings read = settings declared');
      assert.ok(manifest.activationEvents.includes('onStartupFinished'), 'active without opening the view');
      for (const view of views) assert.ok(manifest.activationEvents.includes(`onView:${view}`));
      // Menus name declared commands, and their `when` clauses use context keys the code sets.
      const code = readFileSync(EXTENSION, 'utf8');
      for (const entries of [...Object.values(manifest.contributes.menus), manifest.contributes.viewsWelcome]) {
        for (const entry of entries) {
          if (entry.command) assert.ok(declared.includes(entry.command), `${entry.command} is declared`);
          for (const key of (entry.when ?? '').match(/taskMcp\.\w+/g) ?? []) {
            if (views.includes(key)) continue;
            assert.ok(code.includes(`'setContext', '${key}'`), `the code sets the context key ${key}`);
          }
        }
      }
      assert.ok(new Set(record.executed.filter(([id]) => id === 'setContext').map(([, key]) => key)).has('taskMcp.signedIn'));
      assert.equal(manifest.main, './out/extension.js');
      await ext.reconnect();
    } finally {
      for (const d of stub.context.subscriptions) await d.dispose?.();
      uninstall();
    }
  });

  test('the .vsix holds the compiled extension and its manifest', async (t) => {
    const vsix = process.env.VSIX || path.join(HERE, 'task-mcp-vscode.vsix');
    if (!existsSync(vsix)) {
      t.skip(`no ${path.basename(vsix)}: run \`npm run package\` (run.sh does)`);
      return;
    }
    const { stdout } = await promisify(execFile)('unzip', ['-Z1', vsix]);
    const files = stdout.split('\n');
    for (const f of ['extension/package.json', 'extension/out/extension.js', 'extension/out/core/sse.js',
      'extension/media/tasks.svg', 'extension.vsixmanifest']) {
      assert.ok(files.includes(f), `${f} in the .vsix`);
    }
    assert.ok(files.some((f) => f.toLowerCase() === 'extension/readme.md'), 'the README in the .vsix');
    assert.ok(!files.some((f) => f.includes('node_modules') || f.startsWith('extension/src/') || f.startsWith('extension/test/')));
  });
});
