// Test harness of the extension: the real `task-mcp serve` (started, stopped and restarted from the built
// binary), the real stdio MCP server spoken to with JSON-RPC frames, and a store of its own for every test:
// a SQLite file in a fresh data directory, or, with EXT_TEST_POSTGRES (an admin URL such as
// postgres://postgres@127.0.0.1:5432/postgres) a fresh database, and with EXT_TEST_REDIS a Redis with a
// stream prefix of its own. Nothing here is mocked.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';

export const HERE = path.resolve(import.meta.dirname, '..');
export const ROOT = path.resolve(HERE, '..', '..');
export const BIN = process.env.TASK_MCP_BIN || path.join(ROOT, 'target', 'debug', 'task-mcp');
export const require = createRequire(import.meta.url);
/** The compiled core modules (`npm run compile` first). */
export const core = {
  api: require('../out/core/api.js'),
  sse: require('../out/core/sse.js'),
  state: require('../out/core/state.js'),
  session: require('../out/core/session.js'),
  notify: require('../out/core/notify.js'),
  auth: require('../out/core/auth.js'),
  repository: require('../out/core/repository.js'),
  markdown: require('../out/core/markdown.js'),
};

const run = promisify(execFile);

/** Which stores this run uses, for test names. */
export function storeKind() {
  return `${process.env.EXT_TEST_POSTGRES ? 'postgres' : 'sqlite'}${process.env.EXT_TEST_REDIS ? '+redis' : ''}`;
}

/** A store of one test's own; `dispose()` removes it. */
export class Store {
  static async create() {
    const store = new Store();
    store.dataDir = mkdtempSync(path.join(tmpdir(), 'task-mcp-vscode-'));
    store.env = { TASK_MCP_DATA_DIR: store.dataDir };
    const admin = process.env.EXT_TEST_POSTGRES;
    if (admin) {
      store.database = `task_mcp_vscode_${process.pid}_${randomBytes(4).toString('hex')}`;
      await run('psql', [admin, '-v', 'ON_ERROR_STOP=1', '-qc', `CREATE DATABASE ${store.database}`]);
      const url = new URL(admin);
      url.pathname = `/${store.database}`;
      store.env.DATABASE_URL = url.toString();
    }
    if (process.env.EXT_TEST_REDIS) {
      store.env.REDIS_URL = process.env.EXT_TEST_REDIS;
      store.env.TASK_MCP_STREAM_PREFIX = `vscode-test-${process.pid}-${randomBytes(4).toString('hex')}`;
    }
    return store;
  }

  /** The environment of a child: no outside store, bus or secret leaks into the test. */
  childEnv(extra = {}) {
    const env = { ...process.env };
    for (const key of ['DATABASE_URL', 'REDIS_URL', 'JWT_SECRET', 'HOST', 'PORT', 'PUBLIC_URL', 'CORS_ORIGINS',
      'ALLOWED_HOSTS', 'TASK_MCP_USER', 'TASK_MCP_STREAM_PREFIX', 'TASK_MCP_TOKEN']) delete env[key];
    return { ...env, RUST_LOG: 'warn', ...this.env, ...extra };
  }

  /** A token for `email`, made by `task-mcp token` from the same data directory (the same secret). */
  async token(email) {
    const { stdout } = await run(BIN, ['token', '--user', email, '--ttl', '1h'], { env: this.childEnv() });
    return stdout.trim();
  }

  async dispose() {
    if (this.database) {
      const admin = process.env.EXT_TEST_POSTGRES;
      await run('psql', [admin, '-qc', `DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`]).catch(() => {});
    }
    if (this.env.TASK_MCP_STREAM_PREFIX) {
      const prefix = this.env.TASK_MCP_STREAM_PREFIX;
      const url = new URL(process.env.EXT_TEST_REDIS);
      const args = ['-h', url.hostname, '-p', url.port || '6379', '--scan', '--pattern', `${prefix}*`];
      const { stdout } = await run('redis-cli', args).catch(() => ({ stdout: '' }));
      const keys = stdout.split('\n').filter(Boolean);
      if (keys.length) await run('redis-cli', ['-h', url.hostname, '-p', url.port || '6379', 'DEL', ...keys]).catch(() => {});
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** `task-mcp serve` on 127.0.0.1 (the same port across restarts). */
export class Serve {
  constructor(store, { user = 'alice@example.com' } = {}) {
    this.store = store;
    this.user = user;
    this.port = 0;
    this.proc = null;
    this.log = [];
  }

  async start() {
    const proc = spawn(BIN, ['serve', '--host', '127.0.0.1', '--port', String(this.port)], {
      env: this.store.childEnv({ TASK_MCP_USER: this.user, RUST_LOG: 'info' }),
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
        if (this.log.length > 300) this.log.shift();
        const m = line.match(/(http:\/\/127\.0\.0\.1:(\d+))\/#token=(\S+)/);
        if (m) {
          clearTimeout(timer);
          resolve({ url: m[0], base: m[1], port: Number(m[2]), token: m[3] });
        }
      });
    });
    proc.removeAllListeners('exit');
    proc.removeAllListeners('error');
    Object.assign(this, { link: link.url, base: link.base, port: link.port, token: link.token });
    await eventually(async () => {
      const res = await fetch(`${this.base}/api/me`, { headers: { Authorization: `Bearer ${this.token}` } }).catch(() => null);
      return res?.ok;
    }, { timeout: 15000, what: 'serve to answer' });
    return this;
  }

  /** SIGTERM, as a supervisor stops it; resolves once it has exited. */
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

  api(token = this.token) {
    return new core.api.TaskApi({ baseUrl: this.base, token });
  }
}

/** The stdio MCP server, as an agent's client speaks to it: newline-delimited JSON-RPC frames. */
export class McpClient {
  constructor(store, { user = 'agent@example.com' } = {}) {
    // Started outside any git repository: no default repository narrows what the agent files and lists.
    this.proc = spawn(BIN, [], { cwd: tmpdir(), env: store.childEnv({ TASK_MCP_USER: user }), stdio: ['pipe', 'pipe', 'pipe'] });
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
      clientInfo: { name: 'task-mcp-vscode-tests', version: '1.0.0' },
    });
    this.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    return result;
  }

  /** Calls a tool: its structured result (or the JSON of its text), or throws the tool error. */
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

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `fn` until it returns a truthy value, or fails with the last value seen. */
export async function eventually(fn, { timeout = 5000, interval = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(interval);
  }
}
