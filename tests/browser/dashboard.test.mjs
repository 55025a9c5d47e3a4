// The dashboard in a real browser (Debian's Chromium through playwright-core) against a real
// `task-mcp serve` on 127.0.0.1 with a fresh SQLite data directory, and a real stdio MCP server as the
// agent. Run by `tests/browser/run.sh`; screenshots go to artifacts/browser/.

import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import {
  Serve, McpClient, issueToken, launchBrowser, newPage, artifactPath, screenshot, eventually, freshStore, removeStore, storeKind,
} from './harness.mjs';

const ALICE = 'alice@example.com';
const timings = {};
let dataDir;
let serve;
let agent;
let browser;
let page; // alice's page, signed in through the link serve printed
const seeded = {};

async function waitLive(p = page, timeout = 10000) {
  await p.waitForSelector('#conn[data-state="live"]', { timeout });
}

function card(id, p = page) {
  return p.locator(`.card[data-id="${id}"]`);
}

async function statusOverStdio(id) {
  return (await agent.call('get_task', { task_id: id })).status;
}

/** Realistic tasks from people (REST) and agents (stdio), so the screenshots show a working board. */
async function seed() {
  const bobToken = await issueToken(dataDir, 'bob.martin@example.com');
  const carolToken = await issueToken(dataDir, 'carol@example.com');
  const rest = (body, token) => serve.api('POST', '/api/tasks', body, token);
  const viaAgent = (args) => agent.call('create_task', args);
  const t = {};
  t.ratelimit = await rest({ title: 'Rate-limit failed logins per client address', priority: 'high',
    repository: 'task-mcp', assignee_id: 'me',
    description: 'Count failures per client address in a sliding window and answer 429 with Retry-After.' });
  t.openapi = await viaAgent({ title: 'Write the OpenAPI document from the route table', priority: 'medium',
    repository: 'task-mcp', assignee_id: 'bob.martin@example.com', created_by: 'claude-code' });
  t.flaky = await rest({ title: 'Flaky test: SSE resume after a Redis restart', priority: 'urgent',
    repository: 'task-mcp', assignee_id: 'carol@example.com' }, carolToken);
  t.darkmode = await rest({ title: 'Dark mode for the settings page', priority: 'low', repository: 'web-app' });
  t.billing = await rest({ title: 'Move billing emails to the new template engine', priority: 'medium',
    repository: 'billing', assignee_id: 'bob.martin@example.com' }, bobToken);
  t.csv = await rest({ title: 'CSV export of the task list', priority: 'high', repository: 'web-app',
    assignee_id: 'me' });
  t.lb = await viaAgent({ title: 'Investigate 502s from the load balancer at peak', priority: 'urgent',
    repository: 'infra', created_by: 'Planner Bot' });
  t.docs = await rest({ title: 'Document how to run serve for a team (PostgreSQL + Redis)', priority: 'medium',
    repository: 'task-mcp', assignee_id: 'me' });
  t.tokio = await viaAgent({ title: 'Bump tokio to 1.54', priority: 'low', repository: 'task-mcp',
    assignee_id: 'carol@example.com', created_by: 'Planner Bot' });
  t.keyset = await rest({ title: 'Keyset pagination for listings', priority: 'high', repository: 'task-mcp',
    assignee_id: 'bob.martin@example.com' }, bobToken);
  t.vscode = await rest({ title: 'Prototype of the VS Code panel', priority: 'low', repository: 'vscode-ext' });
  t.tabs = await rest({ title: 'Split the settings page into tabs', priority: 'medium', repository: 'web-app',
    assignee_id: 'bob.martin@example.com' }, bobToken);

  const status = (task, s, token) => serve.api('PUT', `/api/tasks/${task.id}/status`, { status: s }, token);
  await status(t.ratelimit, 'in_progress');
  await agent.call('update_task_status', { task_id: t.openapi.id, new_status: 'in_progress', updated_by: 'claude-code' });
  await status(t.flaky, 'blocked', carolToken);
  await status(t.tabs, 'blocked', bobToken);
  await status(t.docs, 'completed');
  await agent.call('update_task_status', { task_id: t.tokio.id, new_status: 'completed', updated_by: 'Planner Bot',
    comment: 'All tests pass on 1.54.' });
  await status(t.keyset, 'completed', bobToken);
  await status(t.vscode, 'cancelled');
  await serve.api('POST', `/api/tasks/${t.ratelimit.id}/comments`,
    { comment: 'Started on this; the window is 5 minutes for now.' });
  await agent.call('add_task_comment', { task_id: t.ratelimit.id, author: 'claude-code',
    comment: 'Tests for the 429 path are in tests/it/auth.rs.' });
  await agent.call('update_task', { task_id: t.ratelimit.id, priority: 'urgent', updated_by: 'claude-code' });
  Object.assign(seeded, t);
}

before(async () => {
  dataDir = await freshStore();
  timings.store = storeKind();
  serve = await new Serve(dataDir, { user: ALICE }).start();
  agent = new McpClient(dataDir, { user: 'agent@example.com' });
  await agent.initialize();
  await seed();
  browser = await launchBrowser();
  page = await newPage(browser);
});

after(async () => {
  writeFileSync(artifactPath(`timings-${storeKind()}.json`), `${JSON.stringify(timings, null, 2)}\n`);
  if (page && page.errors.length) console.log(`page errors:\n${page.errors.join('\n')}`);
  await browser?.close();
  await agent?.close();
  await serve?.stop();
  if (dataDir) await removeStore(dataDir);
});

// Each test starts from the plain board, whatever the previous one left open.
beforeEach(async () => {
  if (!page || !page.url().startsWith('http')) return;
  const dirty = await page.evaluate(() => {
    for (const d of document.querySelectorAll('dialog[open]')) d.close();
    return location.search !== '';
  });
  if (dirty) {
    await page.goto(`${serve.base}/`);
    await waitLive();
  }
});

test('the link serve prints signs in, and the token leaves the address bar', async () => {
  await page.goto(serve.link);
  await page.waitForSelector('#app:not([hidden])');
  assert.equal(await page.textContent('#me'), ALICE);
  assert.ok(!page.url().includes('token'), `the token is still in ${page.url()}`);
  await waitLive();
  await page.waitForSelector(`.card[data-id="${seeded.ratelimit.id}"]`);
  assert.equal(await page.locator('#cards-in_progress .card').count(), 2);
  assert.equal(await page.locator('#cards-completed .card').count(), 3);
});

test('the stream URL carries a short-lived stream ticket, never the sign-in token', async () => {
  const other = await newPage(browser);
  const streamUrls = [];
  other.on('request', (request) => {
    if (new URL(request.url()).pathname === '/api/tasks/stream') streamUrls.push(request.url());
  });
  await other.goto(serve.link);
  await waitLive(other);
  const signIn = await other.evaluate(() => localStorage.getItem('task-mcp.token'));
  assert.ok(signIn, 'the page keeps its sign-in token');
  assert.ok(streamUrls.length >= 1, 'the page opened the stream');
  for (const url of streamUrls) {
    assert.ok(!url.includes(signIn), `the sign-in token is in ${url}`);
    const ticket = new URL(url).searchParams.get('access_token');
    const claims = JSON.parse(Buffer.from(ticket.split('.')[1], 'base64url').toString());
    assert.equal(claims.scope, 'stream');
    assert.equal(claims.sub, ALICE);
    assert.ok(claims.exp - claims.iat <= 60, `the ticket lives ${claims.exp - claims.iat} s`);
  }
  // Live updates arrive over it.
  const created = await agent.call('create_task', { title: 'Seen over a stream ticket', repository: 'infra' });
  await card(created.id, other).waitFor({ timeout: 2000 });
  await agent.call('delete_task', { task_id: created.id, reason: 'only here to be seen live' });
  assert.deepEqual(other.errors, []);
  await other.context().close();
});

test('screenshots of the board (light, dark, phone) and a task detail', async () => {
  await page.reload();
  await waitLive();
  await page.waitForSelector(`.card[data-id="${seeded.vscode.id}"]`);
  await screenshot(page, 'board-light.png');

  const dark = await newPage(browser, { colorScheme: 'dark' });
  await dark.goto(serve.link);
  await waitLive(dark);
  await dark.waitForSelector(`.card[data-id="${seeded.vscode.id}"]`);
  await screenshot(dark, 'board-dark.png');
  await dark.context().close();

  const phone = await newPage(browser, {
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  });
  await phone.goto(serve.link);
  await waitLive(phone);
  await phone.waitForSelector(`.card[data-id="${seeded.lb.id}"]`);
  await screenshot(phone, 'board-phone.png');
  await phone.locator(`.card[data-id="${seeded.ratelimit.id}"] .card-open`).scrollIntoViewIfNeeded();
  await phone.locator('.board').evaluate((b) => b.scrollTo({ left: b.querySelector('#col-in_progress').offsetLeft - 12 }));
  await phone.locator(`.card[data-id="${seeded.ratelimit.id}"] .card-open`).click();
  await phone.waitForSelector('#d-comments li');
  await screenshot(phone, 'detail-phone.png');
  assert.deepEqual(phone.errors, []);
  await phone.context().close();

  await card(seeded.ratelimit.id).locator('.card-open').click();
  await page.waitForSelector('#d-comments li >> nth=1');
  await page.waitForSelector('#d-history li');
  await screenshot(page, 'detail-light.png');
  await page.locator('#d-history').scrollIntoViewIfNeeded();
  await screenshot(page, 'detail-history.png');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#detail', { state: 'hidden' });
});

test('a task created over stdio appears on the board within 2 s, without a reload', async () => {
  await waitLive();
  await page.evaluate(() => { window.notReloaded = true; });
  const title = `Agent-made task ${Date.now()}`;
  const started = Date.now();
  const created = await agent.call('create_task', { title, repository: 'task-mcp', priority: 'high',
    created_by: 'Planner Bot' });
  await page.locator(`#cards-not_started .card[data-id="${created.id}"]`).waitFor({ timeout: 2000 });
  const elapsed = Date.now() - started;
  timings.stdio_create_to_card_ms = elapsed;
  assert.ok(elapsed < 2000, `took ${elapsed} ms`);
  assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was reloaded');
  assert.match(await card(created.id).getAttribute('class'), /flash/, 'a new card is highlighted');
  assert.equal(await card(created.id).locator('.card-open').textContent(), title);

  // A status change over stdio moves the card as quickly.
  const moved = Date.now();
  await agent.call('update_task_status', { task_id: created.id, new_status: 'blocked' });
  await page.locator(`#cards-blocked .card[data-id="${created.id}"]`).waitFor({ timeout: 2000 });
  timings.stdio_status_to_card_ms = Date.now() - moved;
  seeded.agentMade = created;
});

test('a task an agent deletes leaves the board; one deleted in the detail is gone for the agent', async () => {
  const doomed = await agent.call('create_task', { title: 'Short-lived task', repository: 'infra' });
  await card(doomed.id).waitFor({ timeout: 2000 });
  await agent.call('delete_task', { task_id: doomed.id, reason: 'duplicate' });
  await card(doomed.id).waitFor({ state: 'detached', timeout: 2000 });

  const mine = await agent.call('create_task', { title: 'Delete me from the dashboard' });
  await card(mine.id).locator('.card-open').click();
  await page.waitForSelector('#detail[open]');
  page.once('dialog', (d) => d.accept());
  await page.click('#d-delete');
  await page.waitForSelector('#detail', { state: 'hidden' });
  await card(mine.id).waitFor({ state: 'detached' });
  const listed = await agent.call('get_tasks', { query: 'Delete me from the dashboard' });
  assert.equal(listed.tasks.length, 0);
});

test('dragging a card to another column changes the status that get_tasks sees over stdio', async () => {
  const id = seeded.darkmode.id;
  const put = page.waitForResponse((r) => r.url().endsWith(`/api/tasks/${id}/status`) && r.request().method() === 'PUT');
  await card(id).dragTo(page.locator('#col-in_progress'));
  assert.equal((await put).status(), 200);
  await page.locator(`#cards-in_progress .card[data-id="${id}"]`).waitFor();
  const page1 = await agent.call('get_tasks', { status: 'in_progress', detail: 'full' });
  const seen = page1.tasks.find((t) => t.id === id);
  assert.ok(seen, 'get_tasks over stdio lists the moved task as in_progress');
  assert.equal(seen.updated_by, ALICE, 'the change is recorded as the signed-in person');
});

test('the Move menu changes a status with the keyboard alone', async () => {
  const id = seeded.csv.id;
  await card(id).locator('.card-open').focus();
  await page.keyboard.press('m');
  await page.waitForSelector('#move-menu:popover-open');
  // Focus starts on the first other status; walk to "Blocked" with the arrows.
  for (let i = 0; i < 5; i += 1) {
    if ((await page.evaluate(() => document.activeElement.dataset.status)) === 'blocked') break;
    await page.keyboard.press('ArrowDown');
  }
  await page.keyboard.press('Enter');
  await page.locator(`#cards-blocked .card[data-id="${id}"]`).waitFor();
  assert.equal(await eventually(async () => (await statusOverStdio(id)) === 'blocked' && 'blocked',
    { what: 'status blocked over stdio' }), 'blocked');
  // Focus followed the card, so the next key press acts on it again.
  assert.equal(await page.evaluate(() => document.activeElement.closest('.card')?.dataset.id), id);
});

test('a comment appears in the detail: one typed here, and one an agent adds meanwhile', async () => {
  const id = seeded.billing.id;
  await card(id).locator('.card-open').click();
  await page.waitForSelector('#detail[open]');
  await page.fill('#d-comment', 'Template engine chosen: the one we already use for invoices.');
  await page.click('#d-comment-form button[type="submit"]');
  await page.locator('#d-comments li', { hasText: 'Template engine chosen' }).waitFor();
  const detail = await agent.call('get_task', { task_id: id });
  assert.ok(detail.comments.some((c) => c.comment.startsWith('Template engine chosen') && c.author === ALICE));

  const started = Date.now();
  await agent.call('add_task_comment', { task_id: id, comment: 'I will take the plain-text part.', author: 'Planner Bot' });
  const added = page.locator('#d-comments li', { hasText: 'I will take the plain-text part.' });
  await added.waitFor({ timeout: 2000 });
  timings.stdio_comment_to_detail_ms = Date.now() - started;
  assert.equal(await added.locator('.badge-agent').count(), 1, 'an agent is marked as one');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#detail', { state: 'hidden' });
});

test('an edit made over a newer version gets 412 and shows the new state instead of overwriting it', async () => {
  const id = seeded.tabs.id;
  await card(id).locator('.card-open').click();
  await page.waitForSelector('#detail[open]');
  await page.waitForFunction(() => document.querySelector('#d-history li'));
  await page.fill('#d-title', 'Split the settings page into three tabs');
  // Meanwhile an agent renames it.
  await agent.call('update_task', { task_id: id, title: 'Settings page: tabs for profile, team, billing',
    updated_by: 'claude-code' });
  await page.waitForSelector('#d-changed:not([hidden])');
  assert.equal(await page.inputValue('#d-title'), 'Split the settings page into three tabs', 'typing is kept');

  const patch = page.waitForResponse((r) => r.url().endsWith(`/api/tasks/${id}`) && r.request().method() === 'PATCH');
  await page.click('#d-save');
  assert.equal((await patch).status(), 412);
  await page.waitForSelector('#d-conflict:not([hidden])');
  assert.equal(await page.inputValue('#d-title'), 'Settings page: tabs for profile, team, billing');
  assert.match(await page.textContent('#d-conflict-text'), /claude-code changed this task/);
  assert.equal((await agent.call('get_task', { task_id: id })).title, 'Settings page: tabs for profile, team, billing',
    'nothing was overwritten');
  await screenshot(page, 'conflict.png');

  // The person decides to apply theirs on top of the new version.
  await page.click('#d-conflict-reapply');
  assert.equal(await page.inputValue('#d-title'), 'Split the settings page into three tabs');
  await page.click('#d-save');
  await eventually(async () => (await agent.call('get_task', { task_id: id })).title
    === 'Split the settings page into three tabs', { what: 'the reapplied title' });
  await page.waitForSelector('#d-save:disabled');
  await page.locator('#d-history .history-changes li', { hasText: 'Split the settings page into three tabs' }).waitFor();
  await page.keyboard.press('Escape');
  await page.waitForSelector('#detail', { state: 'hidden' });
  await page.locator(`.card[data-id="${id}"] .card-open`, { hasText: 'three tabs' }).waitFor();
});

test('fields edited in the detail are saved through the REST API', async () => {
  const id = seeded.lb.id;
  await card(id).locator('.card-open').click();
  await page.waitForSelector('#detail[open]');
  await page.selectOption('#d-priority', 'high');
  await page.fill('#d-assignee', 'carol@example.com');
  await page.fill('#d-description', 'Started at 18:00 on Friday; the logs are in the infra bucket.');
  await page.click('#d-save');
  await page.waitForSelector('#d-save:disabled');
  const task = await agent.call('get_task', { task_id: id });
  assert.equal(task.priority, 'high');
  assert.equal(task.assignee_email, 'carol@example.com');
  assert.equal(task.description, 'Started at 18:00 on Friday; the logs are in the infra bucket.');
  await page.locator('#d-history .history-changes li', { hasText: 'changed priority from' }).waitFor();
  await page.keyboard.press('Escape');
  await page.waitForSelector('#detail', { state: 'hidden' });
});

test('a task created in the dashboard is seen by get_tasks over stdio', async () => {
  await page.keyboard.press('n');
  await page.waitForSelector('#create[open]');
  await page.fill('#c-title', 'Review the dashboard on a phone');
  await page.selectOption('#c-priority', 'low');
  await page.fill('#c-repository', 'web-app');
  await page.fill('#c-assignee', 'me');
  await page.click('#c-form button[type="submit"]');
  await page.waitForSelector('#create', { state: 'hidden' });
  await page.locator('#cards-not_started .card', { hasText: 'Review the dashboard on a phone' }).waitFor();
  const found = await agent.call('get_tasks', { query: 'Review the dashboard on a phone', detail: 'full' });
  assert.equal(found.tasks.length, 1);
  assert.equal(found.tasks[0].created_by, ALICE);
  assert.equal(found.tasks[0].assignee_email, ALICE);
  assert.equal(found.tasks[0].repository, 'web-app');
});

test('filters are kept in the URL and survive a reload', async () => {
  await page.selectOption('#f-priority', 'urgent');
  await page.waitForURL(/priority=urgent/);
  await eventually(async () => (await page.locator('.card').count()) === 2, { what: 'two urgent cards' });
  await page.selectOption('#f-assignee', 'me');
  await page.waitForURL(/assignee=me/);
  await eventually(async () => (await page.locator('.card').count()) === 1, { what: 'one urgent card of mine' });
  await page.reload();
  await waitLive();
  assert.equal(await page.inputValue('#f-priority'), 'urgent');
  assert.equal(await page.inputValue('#f-assignee'), 'me');
  await eventually(async () => (await page.locator('.card').count()) === 1, { what: 'the same card after reload' });
  await page.locator(`.card[data-id="${seeded.ratelimit.id}"]`).waitFor();

  // A live event for a task outside the filter does not show up; one inside does.
  await agent.call('create_task', { title: 'Outside the filter', priority: 'low' });
  const inside = await agent.call('create_task', { title: 'Inside the filter', priority: 'urgent', assignee_id: ALICE });
  await card(inside.id).waitFor({ timeout: 2000 });
  assert.equal(await page.locator('.card', { hasText: 'Outside the filter' }).count(), 0);

  await page.fill('#f-q', 'inside the');
  await page.waitForURL(/q=inside/);
  await eventually(async () => (await page.locator('.card').count()) === 1, { what: 'search narrows' });
  await page.click('#f-clear');
  await page.waitForURL((url) => !url.search.includes('priority'));
  await page.locator('.card', { hasText: 'Outside the filter' }).waitFor();
  // The controls say what is in force: nothing.
  for (const id of ['#f-q', '#f-priority', '#f-assignee', '#f-repository']) assert.equal(await page.inputValue(id), '', id);
  assert.equal(await page.isVisible('#f-clear'), false);

  // Back restores the previous filters, controls included.
  await page.goBack();
  await page.waitForURL(/priority=urgent/);
  assert.equal(await page.inputValue('#f-priority'), 'urgent');
  await eventually(async () => (await page.locator('.card', { hasText: 'Outside the filter' }).count()) === 0,
    { what: 'the filter back in force' });
});

test('a column lists 100 tasks, then loads the rest on demand', async () => {
  const titles = [];
  for (let i = 0; i < 101; i += 1) titles.push(`Bulk task ${String(i).padStart(3, '0')}`);
  await Promise.all(titles.map((title) => serve.api('POST', '/api/tasks', { title, repository: 'bulk' })));
  await page.goto(`${serve.base}/?repository=bulk`);
  await waitLive();
  await eventually(async () => (await page.locator('#cards-not_started .card').count()) === 100, { what: '100 cards' });
  assert.equal(await page.textContent('#count-not_started'), '100+');
  await page.click('#more-not_started');
  await eventually(async () => (await page.locator('#cards-not_started .card').count()) === 101, { what: '101 cards' });
  assert.equal(await page.textContent('#count-not_started'), '101');
  assert.equal(await page.isVisible('#more-not_started'), false);
});

test('without a token the page asks for one; a token from `task-mcp token` signs in', async () => {
  const other = await newPage(browser);
  await other.goto(`${serve.base}/`);
  await other.waitForSelector('#signin:not([hidden])');
  assert.equal(await other.isVisible('#app'), false);
  await other.fill('#signin-token', 'not-a-token');
  await other.click('#signin-form button[type="submit"]');
  await other.waitForSelector('#signin-error:not([hidden])');
  await screenshot(other, 'signin.png');

  const token = await issueToken(dataDir, 'bob.martin@example.com');
  await other.fill('#signin-token', token);
  await other.click('#signin-form button[type="submit"]');
  await other.waitForSelector('#app:not([hidden])');
  assert.equal(await other.textContent('#me'), 'bob.martin@example.com');
  await waitLive(other);
  await other.click('#signout');
  await other.waitForSelector('#signin:not([hidden])');
  await other.reload();
  await other.waitForSelector('#signin:not([hidden])');
  assert.deepEqual(other.errors, []);
  await other.context().close();
});

test('a link for another user asks before replacing the sign-in, and staying is the default', async () => {
  const other = await newPage(browser);
  const open = async (link) => {
    await other.goto('about:blank');
    await other.goto(link);
  };
  await open(serve.link);
  await other.waitForSelector('#app:not([hidden])');
  assert.equal(await other.textContent('#me'), ALICE);

  const bobLink = `${serve.base}/#token=${await issueToken(dataDir, 'bob.martin@example.com')}`;
  await open(bobLink);
  await other.waitForSelector('#switch-user[open]');
  assert.ok(!other.url().includes('token'), `the token is still in ${other.url()}`);
  const question = await other.textContent('#switch-user');
  assert.ok(question.includes(ALICE) && question.includes('bob.martin@example.com'), question);
  await screenshot(other, 'switch-user.png');
  await other.keyboard.press('Escape');
  await other.waitForSelector('#app:not([hidden])');
  assert.equal(await other.textContent('#me'), ALICE, 'Escape keeps the sign-in');

  await open(bobLink);
  await other.click('#s-stay');
  await other.waitForSelector('#app:not([hidden])');
  assert.equal(await other.textContent('#me'), ALICE);

  await open(bobLink);
  await other.click('#s-switch');
  await eventually(async () => (await other.textContent('#me')) === 'bob.martin@example.com', { what: 'signed in as bob' });

  // A fresh link for the one already signed in is taken without a question.
  await open(`${serve.base}/#token=${await issueToken(dataDir, 'bob.martin@example.com')}`);
  await other.waitForSelector('#app:not([hidden])');
  assert.equal(await other.isVisible('#switch-user'), false);
  assert.equal(await other.textContent('#me'), 'bob.martin@example.com');
  assert.deepEqual(other.errors, []);
  await other.context().close();
});

test('every control has an accessible name, and the page has no script errors', async () => {
  const unnamed = await page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll('input, select, textarea, button')) {
      const named = (el.labels && el.labels.length) || el.getAttribute('aria-label')
        || el.getAttribute('aria-labelledby') || (el.textContent || '').trim();
      if (!named) bad.push(el.outerHTML.slice(0, 120));
    }
    return bad;
  });
  assert.deepEqual(unnamed, []);
  assert.deepEqual(page.errors, []);
});

test('going offline shows it, and coming back online catches up', async () => {
  await waitLive();
  await page.context().setOffline(true);
  await page.waitForSelector('#conn[data-state="offline"]', { timeout: 5000 });
  const meanwhile = await agent.call('create_task', { title: 'Made while the browser was offline' });
  await page.context().setOffline(false);
  await waitLive(page, 15000);
  await card(meanwhile.id).waitFor({ timeout: 5000 });
});

test('the page reconnects after serve restarts, and catches up on what changed meanwhile', async () => {
  // `page` has seen events (it resumes with Last-Event-ID); `fresh` has seen none (it reloads the list).
  await waitLive();
  const seen = await agent.call('create_task', { title: 'Seen before the restart', repository: 'infra' });
  await card(seen.id).waitFor({ timeout: 2000 });
  const fresh = await newPage(browser);
  await fresh.goto(serve.link);
  await waitLive(fresh);
  await serve.stop();
  await page.waitForSelector('#conn[data-state="reconnecting"], #conn[data-state="offline"]', { timeout: 10000 });
  await screenshot(page, 'reconnecting.png');
  // A change made while serve is down (the agent writes to the store directly) …
  const whileDown = await agent.call('create_task', { title: 'Made while serve was down', repository: 'infra' });
  await serve.start();
  const restarted = Date.now();
  await waitLive(page, 15000);
  timings.restart_to_live_ms = Date.now() - restarted;
  await waitLive(fresh, 15000);
  // … is caught up by both …
  await card(whileDown.id).waitFor({ timeout: 5000 });
  await card(whileDown.id, fresh).waitFor({ timeout: 5000 });
  // … and live updates flow again, exactly once.
  const started = Date.now();
  const after = await agent.call('create_task', { title: 'Made after the restart', repository: 'infra' });
  await card(after.id).waitFor({ timeout: 2000 });
  timings.stdio_create_to_card_after_restart_ms = Date.now() - started;
  await card(after.id, fresh).waitFor({ timeout: 2000 });
  assert.equal(await page.locator(`.card[data-id="${whileDown.id}"]`).count(), 1);
  await screenshot(page, 'board-after-restart.png');
  assert.deepEqual(page.errors, []);
  assert.deepEqual(fresh.errors, []);
  await fresh.context().close();
});
