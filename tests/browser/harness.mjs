// Test harness for the dashboard's browser tests: the real `task-mcp serve` (started and restarted from
// the built binary), the real stdio MCP server (JSON-RPC frames over stdin/stdout), and Debian's Chromium
// driven by playwright-core. Nothing here is mocked.

import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const BIN = process.env.TASK_MCP_BIN || path.join(ROOT, 'target', 'debug', 'task-mcp');
export const ARTIFACTS = process.env.ARTIFACTS_DIR || path.join(ROOT, 'artifacts', 'browser');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Set by `freshStore()` when the run uses a PostgreSQL database of its own. */
let databaseUrl = null;

/** The environment of every child: no outside store, bus or secret leaks into the test. */
function childEnv(dataDir, extra = {}) {
  const env = { ...process.env };
  for (const key of ['DATABASE_URL', 'REDIS_URL', 'JWT_SECRET', 'HOST', 'PORT', 'PUBLIC_URL', 'CORS_ORIGINS',
    'ALLOWED_HOSTS', 'TASK_MCP_USER', 'TASK_MCP_STREAM_PREFIX']) delete env[key];
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  return { ...env, TASK_MCP_DATA_DIR: dataDir, RUST_LOG: 'info', ...extra };
}

/**
 * A fresh store for one run: a new data directory (its SQLite file, its generated JWT secret) and, when
 * BROWSER_TEST_POSTGRES names a PostgreSQL server (e.g. postgres://postgres@127.0.0.1:5432/postgres),
 * a new database on it instead of the SQLite file. Returns the data directory.
 */
export async function freshStore() {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'task-mcp-browser-'));
  const server = process.env.BROWSER_TEST_POSTGRES;
  if (server) {
    const name = `task_mcp_browser_${process.pid}_${Date.now()}`;
    await promisify(execFile)('psql', [server, '-v', 'ON_ERROR_STOP=1', '-qc', `CREATE DATABASE ${name}`]);
    const url = new URL(server);
    url.pathname = `/${name}`;
    databaseUrl = url.toString();
    dropDatabase = async () => {
      await promisify(execFile)('psql', [server, '-qc', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`]);
    };
  }
  return dataDir;
}

let dropDatabase = async () => {};

export async function removeStore(dataDir) {
  await dropDatabase().catch((e) => console.log(`could not drop the test database: ${e.message}`));
  rmSync(dataDir, { recursive: true, force: true });
}

export function storeKind() {
  return databaseUrl ? 'postgres' : 'sqlite';
}

/** `task-mcp serve` on 127.0.0.1, with the secret it generates in the data directory. */
export class Serve {
  constructor(dataDir, { user = 'alice@example.com' } = {}) {
    this.dataDir = dataDir;
    this.user = user;
    this.port = 0;
    this.proc = null;
    this.log = [];
  }

  /** Starts it (on the port of the previous run, if any) and resolves once it printed its dashboard link. */
  async start() {
    const proc = spawn(BIN, ['serve', '--host', '127.0.0.1', '--port', String(this.port)], {
      env: childEnv(this.dataDir, { TASK_MCP_USER: this.user }),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.proc = proc;
    const lines = readline.createInterface({ input: proc.stderr });
    const link = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not print its link:\n${this.log.join('\n')}`)), 20000);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`serve exited with ${code}:\n${this.log.join('\n')}`));
      });
      proc.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot start ${BIN}: ${e.message}`));
      });
      lines.on('line', (line) => {
        this.log.push(line);
        if (this.log.length > 400) this.log.shift();
        const m = line.match(/(http:\/\/127\.0\.0\.1:(\d+))\/#token=(\S+)/);
        if (m) {
          clearTimeout(timer);
          resolve({ url: m[0], base: m[1], port: Number(m[2]), token: m[3] });
        }
      });
    });
    proc.removeAllListeners('exit');
    proc.removeAllListeners('error');
    this.link = link.url;
    this.base = link.base;
    this.port = link.port;
    this.token = link.token;
    await this.waitHealthy();
    return this;
  }

  async waitHealthy() {
    const deadline = Date.now() + 15000;
    for (;;) {
      try {
        const res = await fetch(`${this.base}/api/me`, { headers: { Authorization: `Bearer ${this.token}` } });
        if (res.ok) return;
      } catch { /* not yet */ }
      if (Date.now() > deadline) throw new Error(`serve never answered:\n${this.log.join('\n')}`);
      await sleep(100);
    }
  }

  /** SIGTERM, as a supervisor would stop it; resolves when it has exited. */
  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
    await exited;
    clearTimeout(timer);
    this.proc = null;
  }

  /** The REST API as a person's token sees it. */
  async api(method, pathname, body, token = this.token) {
    const res = await fetch(`${this.base}${pathname}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error(`${method} ${pathname}: ${res.status} ${text}`);
    return data;
  }
}

/** A token for another user, made by `task-mcp token --user EMAIL` from the same data directory. */
export async function issueToken(dataDir, email) {
  const { stdout } = await promisify(execFile)(BIN, ['token', '--user', email, '--ttl', '1h'], {
    env: childEnv(dataDir),
  });
  return stdout.trim();
}

/** The stdio MCP server, spoken to as an agent's client would: newline-delimited JSON-RPC frames. */
export class McpClient {
  constructor(dataDir, { user = 'agent@example.com' } = {}) {
    // Started outside any git repository: no default repository narrows what the agent files and lists.
    this.proc = spawn(BIN, [], { cwd: tmpdir(), env: childEnv(dataDir, { TASK_MCP_USER: user }), stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.once('error', (e) => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(`cannot start ${BIN}: ${e.message}`));
      this.pending.clear();
    });
    this.nextId = 1;
    this.pending = new Map();
    this.stderr = [];
    readline.createInterface({ input: this.proc.stderr }).on('line', (l) => {
      this.stderr.push(l);
      if (this.stderr.length > 200) this.stderr.shift();
    });
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      let msg;
      try { msg = JSON.parse(line); } catch { return; }
      const waiter = msg.id != null && this.pending.get(msg.id);
      if (!waiter) return;
      this.pending.delete(msg.id);
      if (msg.error) waiter.reject(new Error(`${msg.error.code}: ${msg.error.message}`));
      else waiter.resolve(msg.result);
    });
  }

  send(frame) {
    this.proc.stdin.write(`${JSON.stringify(frame)}\n`);
  }

  request(method, params) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method} timed out:\n${this.stderr.join('\n')}`));
      }, 15000);
      this.pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.send({ jsonrpc: '2.0', id, method, params });
    });
  }

  async initialize() {
    const result = await this.request('initialize', {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'task-mcp-browser-tests', version: '1.0.0' },
    });
    this.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    return result;
  }

  /** Calls a tool; its structured result (or the JSON of its text), or throws the tool error. */
  async call(name, args) {
    const result = await this.request('tools/call', { name, arguments: args });
    const text = result.content?.find((c) => c.type === 'text')?.text;
    if (result.isError) throw new Error(`${name} failed: ${text}`);
    return result.structuredContent ?? JSON.parse(text);
  }

  async close() {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A page that fails the test on any script error, and keeps console errors for the report. */
export async function newPage(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, ...options });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|EventSource|ERR_CONNECTION_REFUSED/.test(m.text())) {
      page.errors.push(`console: ${m.text()}`);
    }
  });
  return page;
}

export function artifactPath(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

/** Saves a screenshot once dialogs have finished sliding in, so the picture shows the sheet as people
 * see it rather than half-faded over the board (highlights and the reconnecting pulse are kept). */
export async function screenshot(page, name) {
  await page.evaluate(() =>
    Promise.all(document.getAnimations().filter((a) => a.effect?.target?.tagName === 'DIALOG').map((a) => a.finished)));
  await page.screenshot({ path: artifactPath(name) });
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `fn` until it returns a truthy value, or fails with the last value seen. */
export async function eventually(fn, { timeout = 5000, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(interval);
  }
}
