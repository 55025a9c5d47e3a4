// Drives the packaged extension once inside a real VS Code: code-server's web build (from the npm registry)
// in Debian's Chromium through playwright-core, against a real `task-mcp serve` on a fresh SQLite store.
// A manual check, not part of the test command (code-server is about 800 MB and needs Node 24):
//
//   mkdir /tmp/vsreal && cd /tmp/vsreal && npm i node@24 playwright-core
//   apt-get install chromium libkrb5-dev
//   PATH=$PWD/node_modules/.bin:$PATH npm i --ignore-scripts code-server
//   (cd node_modules/code-server && PATH=/tmp/vsreal/node_modules/.bin:$PATH \
//      npm_config_user_agent="npm node/v24 linux x64" sh ./postinstall.sh)
//   cd /tmp/vsreal && node /path/to/examples/vscode-extension/tools/code-server-demo.mjs
//
// It installs the .vsix (`npm run package` first), opens the Tasks view, has another user hand a task over,
// opens a task's preview, clicks Start on the notification, and saves screenshots in OUT (default ./shots).
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { createRequire } from 'node:module';

// playwright-core and code-server come from the folder it is run in, not from this repository.
const local = createRequire(path.join(process.cwd(), 'index.js'));
const { chromium } = local('playwright-core');
const HERE = path.resolve(import.meta.dirname, '..');
const BIN = process.env.TASK_MCP_BIN || path.resolve(HERE, '..', '..', 'target', 'debug', 'task-mcp');
const VSIX = process.env.VSIX || path.join(HERE, 'task-mcp-vscode.vsix');
const CS = process.env.CODE_SERVER || path.join(process.cwd(), 'node_modules', 'code-server', 'out', 'node', 'entry.js');
const NODE24 = process.env.NODE24 || path.join(process.cwd(), 'node_modules', '.bin', 'node');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.env.OUT || path.join(process.cwd(), 'shots');
mkdirSync(OUT, { recursive: true });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const data = mkdtempSync(path.join(tmpdir(), 'vsreal-data-'));
const env = { ...process.env, TASK_MCP_DATA_DIR: data, TASK_MCP_USER: 'alice@example.com' };
delete env.DATABASE_URL; delete env.REDIS_URL;
const serve = spawn(BIN, ['serve', '--host', '127.0.0.1', '--port', '18790'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
const link = await new Promise((resolve) => {
  readline.createInterface({ input: serve.stderr }).on('line', (l) => {
    const m = l.match(/(http:\/\/127\.0\.0\.1:18790)\/#token=(\S+)/);
    if (m) resolve({ base: m[1], token: m[2] });
  });
});
console.log('serve up', link.base);
const bob = execFileSync(BIN, ['token', '--user', 'bob@example.com', '--ttl', '1h'], { env }).toString().trim();
const api = async (token, method, p, body) => {
  const r = await fetch(`${link.base}${p}`, { method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
  return r.json();
};
await api(link.token, 'POST', '/api/tasks', { title: 'Fix the login redirect', repository: 'demo', priority: 'high', assignee_id: 'me' });
const t2 = await api(bob, 'POST', '/api/tasks', { title: 'Write the release notes', repository: 'demo', priority: 'medium' });
await api(bob, 'PUT', `/api/tasks/${t2.id}/status`, { status: 'in_progress' });
await api(bob, 'POST', '/api/tasks', { title: 'Upgrade the database driver', repository: 'demo', priority: 'urgent', status: 'blocked' });
await api(link.token, 'POST', '/api/tasks', { title: 'Flaky test in CI', repository: 'demo', priority: 'low', status: 'completed' });

const ud = mkdtempSync(path.join(tmpdir(), 'vsreal-ud-'));
const ext = mkdtempSync(path.join(tmpdir(), 'vsreal-ext-'));
const ws = mkdtempSync(path.join(tmpdir(), 'demo-'));
mkdirSync(path.join(ud, 'User'), { recursive: true });
writeFileSync(path.join(ud, 'User', 'settings.json'), JSON.stringify({
  'taskMcp.serverUrl': link.base, 'taskMcp.repository': 'demo', 'workbench.startupEditor': 'none',
  'security.workspace.trust.enabled': false, 'workbench.colorTheme': 'Default Dark Modern', 'telemetry.telemetryLevel': 'off',
  'workbench.tips.enabled': false,
}));
const csEnv = { ...process.env, TASK_MCP_TOKEN: link.token };
console.log(execFileSync(NODE24, [CS, '--user-data-dir', ud, '--extensions-dir', ext, '--install-extension', VSIX], { env: csEnv }).toString());
const cs = spawn(NODE24, [CS, '--auth', 'none', '--bind-addr', '127.0.0.1:18791', '--user-data-dir', ud, '--extensions-dir', ext, '--disable-telemetry', ws], { env: csEnv, stdio: ['ignore', 'pipe', 'pipe'] });
cs.stderr.on('data', (d) => process.stderr.write(`[cs] ${d}`));
cs.stdout.on('data', (d) => process.stdout.write(`[cs] ${d}`));
for (let i = 0; i < 100; i++) {
  try { if ((await fetch('http://127.0.0.1:18791/healthz')).ok) break; } catch {}
  await sleep(300);
}
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 850 } });
  await page.goto(`http://127.0.0.1:18791/?folder=${ws}`);
  await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
  const icon = page.locator('.activitybar [aria-label^="Task MCP"]').first();
  await icon.waitFor({ timeout: 60000 });
  await icon.click();
  await page.getByText('Fix the login redirect').first().waitFor({ timeout: 30000 });
  await sleep(1500);
  await page.screenshot({ path: `${OUT}/tree.png` });
  // An agent hands alice a task: the notification.
  await api(bob, 'POST', '/api/tasks', { title: 'Review the payment retry PR', repository: 'demo', priority: 'high', assignee_id: 'alice@example.com' });
  await page.getByText(/created “Review the payment retry PR” for you/).first().waitFor({ timeout: 10000 });
  await sleep(800);
  await page.screenshot({ path: `${OUT}/notification.png` });
  // Open the preview of a task.
  await page.getByText('Fix the login redirect').first().click();
  await sleep(4000);
  await page.screenshot({ path: `${OUT}/preview.png` });
  // Start from the notification: the task moves to In progress, live.
  await page.getByRole('button', { name: 'Start' }).first().click();
  await page.getByText('In progress (2)').first().waitFor({ timeout: 10000 });
  const tasks = await api(link.token, 'GET', '/api/tasks?repository=demo&status=in_progress');
  console.log('in progress on the server:', tasks.tasks.map((t) => `${t.title} (${t.updated_by})`));
  await sleep(800);
  await page.screenshot({ path: `${OUT}/started.png` });
  const status = await page.locator('#status\\.extensionMessage, .statusbar-item').allInnerTexts();
  console.log('status bar:', status.filter((s) => /Live|Offline|Reconnecting/.test(s)));
} finally {
  await browser.close();
  cs.kill('SIGTERM');
  serve.kill('SIGTERM');
}
