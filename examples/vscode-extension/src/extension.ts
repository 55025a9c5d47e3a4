/** The VS Code layer, and the only module that imports `vscode`: commands, the Tasks view, the status bar,
 * notifications, sign-in through SecretStorage. Everything it shows comes from the modules in `core/`. */

import * as vscode from 'vscode';
import { ApiError, TaskApi, type ErrorKind } from './core/api';
import { parseSignIn, tokenSubject } from './core/auth';
import { taskMarkdown } from './core/markdown';
import { HandOverNotifier, type Notice } from './core/notify';
import { detectRepository } from './core/repository';
import { Session } from './core/session';
import type { StreamState } from './core/sse';
import { taskLabel } from './core/state';
import { PRIORITIES, STATUSES, STATUS_LABELS, type Status, type Task } from './core/types';

export const TOKEN_KEY = 'taskMcp.token';
const MINE_ONLY_KEY = 'taskMcp.mineOnly';
const SCHEME = 'task-mcp';

type Node = { type: 'group'; status: Status; count: number } | { type: 'task'; task: Task };

const STATUS_ICONS: Record<Status, string> = {
  not_started: 'circle-large-outline',
  in_progress: 'play-circle',
  blocked: 'error',
  completed: 'pass',
  cancelled: 'circle-slash',
};

/** The Tasks view: groups by status, then tasks. */
class TaskTree implements vscode.TreeDataProvider<Node> {
  private readonly changed = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private readonly ext: TaskMcpExtension) {}

  refresh(): void {
    this.changed.fire(undefined);
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.type === 'group') {
      const open = node.status !== 'completed' && node.status !== 'cancelled';
      const item = new vscode.TreeItem(
        `${STATUS_LABELS[node.status]} (${node.count})`,
        open ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed,
      );
      item.id = `group:${node.status}`;
      item.contextValue = 'group';
      return item;
    }
    const task = node.task;
    const item = new vscode.TreeItem(taskLabel(task), vscode.TreeItemCollapsibleState.None);
    item.id = task.id;
    const who = task.claim ? `claimed by ${task.claim.holder}` : (task.assignee_email ?? 'unassigned');
    item.description = `${task.priority} · ${who}`;
    item.tooltip = `${taskLabel(task)}\n${STATUS_LABELS[task.status]} · ${task.priority} · ${who}\nversion ${task.version}`;
    item.iconPath = new vscode.ThemeIcon(STATUS_ICONS[task.status] ?? 'circle-large-outline');
    item.contextValue = task.claim ? 'task.claimed' : 'task';
    item.command = { command: 'taskMcp.openTask', title: 'Open Task', arguments: [task.id] };
    return item;
  }

  getChildren(node?: Node): Node[] {
    const session = this.ext.session;
    if (!session) return [];
    const groups = session.state.groups(this.ext.mineOnly ? session.me?.id : undefined);
    if (!node) {
      return STATUSES.filter((s) => (groups.get(s) ?? []).length > 0).map((status) => ({
        type: 'group',
        status,
        count: groups.get(status)!.length,
      }));
    }
    if (node.type === 'group') return (groups.get(node.status) ?? []).map((task) => ({ type: 'task', task }));
    return [];
  }

  getParent(node: Node): Node | undefined {
    if (node.type === 'task') return { type: 'group', status: node.task.status, count: 0 };
    return undefined;
  }
}

/** The read-only Markdown of a task (`task-mcp:/ID/title.md`), refreshed when the task changes. */
class TaskDocuments implements vscode.TextDocumentContentProvider {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private readonly open = new Map<string, vscode.Uri>();

  constructor(private readonly ext: TaskMcpExtension) {}

  static uri(task: Task): vscode.Uri {
    const slug = taskLabel(task).replace(/[^\p{L}\p{N}-]+/gu, '-').slice(0, 60) || 'task';
    return vscode.Uri.parse(`${SCHEME}:/${task.id}/${slug}.md`);
  }

  static idOf(uri: vscode.Uri): string {
    return uri.path.split('/')[1] ?? '';
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const api = this.ext.session?.api;
    if (!api) return '# Not signed in\n\nRun **Task MCP: Sign In**.\n';
    const id = TaskDocuments.idOf(uri);
    this.open.set(id, uri);
    try {
      const [task, comments, history] = await Promise.all([api.getTask(id), api.comments(id), api.history(id)]);
      return taskMarkdown(task, comments, history);
    } catch (err) {
      return `# Cannot show this task\n\n${(err as Error).message}\n`;
    }
  }

  taskChanged(id: string): void {
    const uri = this.open.get(id);
    if (uri) this.changed.fire(uri);
  }
}

/** Errors about the connection are shown once (until the connection works again), with their fix. */
class ErrorReporter {
  private readonly shown = new Set<ErrorKind>();

  constructor(private readonly ext: TaskMcpExtension) {}

  clear(): void {
    this.shown.clear();
  }

  async report(err: unknown): Promise<void> {
    const error = err instanceof ApiError ? err : new ApiError('other', (err as Error)?.message ?? String(err));
    const once: ErrorKind[] = ['offline', 'unauthorized', 'forbidden', 'rate_limited', 'unavailable'];
    if (once.includes(error.kind)) {
      if (this.shown.has(error.kind)) return;
      this.shown.add(error.kind);
    }
    const url = this.ext.serverUrl();
    let choice: string | undefined;
    switch (error.kind) {
      case 'offline':
        choice = await vscode.window.showErrorMessage(
          `Task MCP: cannot reach the server at ${url}. Start it with \`task-mcp serve\`, or set taskMcp.serverUrl.`,
          'Retry',
          'Open Settings',
        );
        break;
      case 'unauthorized':
        choice = await vscode.window.showErrorMessage(
          'Task MCP: the server refused the token (expired or revoked). Sign in again with the link `task-mcp serve` prints or a token from `task-mcp token`.',
          'Sign In',
        );
        break;
      case 'forbidden':
        choice = await vscode.window.showErrorMessage(
          `Task MCP: the server at ${url} refused this request (403: ${error.message}). Check taskMcp.serverUrl or sign in with another token.`,
          'Sign In',
          'Open Settings',
        );
        break;
      case 'rate_limited':
        choice = await vscode.window.showWarningMessage(
          `Task MCP: too many requests; the server asks to wait ${error.retryAfterSeconds ?? 'a few'} s.`,
          'Retry',
        );
        break;
      case 'unavailable':
        choice = await vscode.window.showErrorMessage(
          `Task MCP: the server answers but its database does not (${error.message}).`,
          'Retry',
        );
        break;
      default:
        await vscode.window.showErrorMessage(`Task MCP: ${error.message}`);
    }
    if (choice === 'Retry') await this.ext.reconnect();
    else if (choice === 'Sign In') await vscode.commands.executeCommand('taskMcp.signIn');
    else if (choice === 'Open Settings') await vscode.commands.executeCommand('workbench.action.openSettings', 'taskMcp');
  }
}

export class TaskMcpExtension {
  session: Session | null = null;
  mineOnly: boolean;
  readonly tree: TaskTree;
  readonly view: vscode.TreeView<Node>;
  readonly documents: TaskDocuments;
  readonly statusBar: vscode.StatusBarItem;
  readonly errors: ErrorReporter;
  readonly notifier: HandOverNotifier;
  /** Settles when the latest connection attempt has loaded the tasks (or failed). */
  ready: Promise<void> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | null = null;
  private generation = 0;

  constructor(private readonly context: vscode.ExtensionContext) {
    this.mineOnly = context.workspaceState.get<boolean>(MINE_ONLY_KEY, false);
    this.tree = new TaskTree(this);
    this.view = vscode.window.createTreeView('taskMcp.tasks', { treeDataProvider: this.tree, showCollapseAll: true });
    this.documents = new TaskDocuments(this);
    this.statusBar = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
    this.statusBar.command = 'taskMcp.refresh';
    this.errors = new ErrorReporter(this);
    this.notifier = new HandOverNotifier(
      () => this.session?.me ?? null,
      (notice) => void this.notify(notice),
    );
    context.subscriptions.push(
      this.view,
      this.statusBar,
      vscode.workspace.registerTextDocumentContentProvider(SCHEME, this.documents),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('taskMcp')) void this.reconnect();
      }),
      context.secrets.onDidChange((e) => {
        if (e.key === TOKEN_KEY) void this.reconnect();
      }),
      { dispose: () => void this.disconnect() },
    );
    this.registerCommands();
  }

  serverUrl(): string {
    return vscode.workspace.getConfiguration('taskMcp').get<string>('serverUrl') || 'http://127.0.0.1:8000';
  }

  /** The repository in view: the setting, else the workspace's (git remote name, else folder name); none
   * without a workspace (then every repository). */
  repository(): string | undefined {
    const configured = vscode.workspace.getConfiguration('taskMcp').get<string>('repository')?.trim();
    if (configured) return configured === '*' ? undefined : configured;
    const folder = vscode.workspace.workspaceFolders?.[0];
    return folder ? detectRepository(folder.uri.fsPath) : undefined;
  }

  private async token(): Promise<string | undefined> {
    return (await this.context.secrets.get(TOKEN_KEY)) || process.env.TASK_MCP_TOKEN || undefined;
  }

  private async disconnect(): Promise<void> {
    this.generation++;
    await this.stopSession();
  }

  private async stopSession(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.notifier.dispose();
    const session = this.session;
    this.session = null;
    await session?.stop();
  }

  /** (Re)connects with the current settings and token. */
  reconnect(): Promise<void> {
    this.ready = this.connect();
    return this.ready;
  }

  private async connect(): Promise<void> {
    // Taken before any wait, so that of two overlapping connects only the later one goes on.
    const generation = ++this.generation;
    await this.stopSession();
    if (generation !== this.generation) return;
    const token = await this.token();
    await vscode.commands.executeCommand('setContext', 'taskMcp.signedIn', Boolean(token));
    // A newer connect started meanwhile (settings and secrets change together): it wins.
    if (generation !== this.generation) return;
    if (!token) {
      this.view.message = 'Sign in to see the team’s tasks.';
      this.showStatus('signed-out');
      this.tree.refresh();
      return;
    }
    const repository = this.repository();
    const api = new TaskApi({ baseUrl: this.serverUrl(), token });
    const session = new Session(api, { repository }, {
      onChange: (changes) => {
        this.tree.refresh();
        this.showStatus(session.status);
        if (changes !== 'reload') for (const c of changes) if (c) this.documents.taskChanged(c.task.id);
      },
      onEvent: (event) => this.notifier.observe(event),
      onState: (state, error) => {
        this.showStatus(state);
        if (state === 'live') this.errors.clear();
        if (error) void this.errors.report(error);
      },
      onError: (error) => void this.errors.report(error),
    });
    this.session = session;
    this.showStatus('connecting');
    try {
      await session.start();
    } catch (err) {
      if (generation !== this.generation) return;
      this.session = null;
      this.showStatus('offline');
      this.view.message = `Not connected to ${api.baseUrl}.`;
      void this.errors.report(err);
      // Try again by itself (a server being started, a network coming back); a refused token waits for a sign-in.
      if (!(err instanceof ApiError && err.kind === 'unauthorized')) {
        const wait = err instanceof ApiError && err.retryAfterSeconds ? err.retryAfterSeconds * 1000 : 10000;
        this.retryTimer = setTimeout(() => void this.reconnect(), wait);
      }
      return;
    }
    if (generation !== this.generation) return;
    await vscode.commands.executeCommand('setContext', 'taskMcp.claims', session.features.claims);
    this.view.message = repository ? `Repository: ${repository}${this.mineOnly ? ' · assigned to me' : ''}` : undefined;
    await vscode.commands.executeCommand('setContext', 'taskMcp.mineOnly', this.mineOnly);
    // The list loads once the stream has opened (so no change falls between the two): `ready` waits for it.
    await Promise.race([session.whenLoaded, new Promise((resolve) => setTimeout(resolve, 15000).unref())]);
  }

  showStatus(state: StreamState | 'signed-out'): void {
    const bar = this.statusBar;
    if (state === 'signed-out') {
      bar.text = '$(tasklist) Task MCP: Sign in';
      bar.tooltip = 'Task MCP: not signed in';
      bar.command = 'taskMcp.signIn';
    } else {
      const count = this.session?.state.openCount(this.session.me?.id) ?? 0;
      const label = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline' }[state];
      const icon = { connecting: '$(sync~spin)', live: '$(tasklist)', reconnecting: '$(sync~spin)', offline: '$(debug-disconnect)' }[state];
      bar.text = `${icon} ${count} · ${label}`;
      bar.tooltip = `Task MCP: ${count} open task${count === 1 ? '' : 's'} assigned to you · ${label} (${this.serverUrl()})`;
      bar.command = 'taskMcp.refresh';
    }
    bar.show();
  }

  private async notify(notice: Notice): Promise<void> {
    if (notice.kind === 'single') {
      const { task, actor, created } = notice;
      const text = created
        ? `${actor} created “${taskLabel(task)}” for you (${task.priority}).`
        : `${actor} assigned “${taskLabel(task)}” to you (${task.priority}).`;
      const choice = await vscode.window.showInformationMessage(text, 'Open', 'Start');
      if (choice === 'Open') await this.openTask(task.id);
      else if (choice === 'Start') await this.changeStatus(task.id, 'in_progress');
      return;
    }
    const names = notice.tasks.slice(0, 3).map((t) => `“${taskLabel(t)}”`).join(', ');
    const more = notice.tasks.length > 3 ? ` and ${notice.tasks.length - 3} more` : '';
    const choice = await vscode.window.showInformationMessage(
      `${notice.tasks.length} tasks were handed to you by ${notice.actors.join(', ')}: ${names}${more}.`,
      'Show My Tasks',
    );
    if (choice === 'Show My Tasks') await this.setMineOnly(true);
  }

  private async setMineOnly(value: boolean): Promise<void> {
    this.mineOnly = value;
    await this.context.workspaceState.update(MINE_ONLY_KEY, value);
    await vscode.commands.executeCommand('setContext', 'taskMcp.mineOnly', value);
    const repository = this.session?.state.scope.repository;
    this.view.message = repository ? `Repository: ${repository}${value ? ' · assigned to me' : ''}` : undefined;
    this.tree.refresh();
  }

  /** The session, or a message saying how to get one. */
  private needSession(): Session | null {
    if (this.session?.me) return this.session;
    void vscode.window
      .showWarningMessage('Task MCP: not connected. Sign in first (or check that `task-mcp serve` runs).', 'Sign In')
      .then((c) => (c === 'Sign In' ? vscode.commands.executeCommand('taskMcp.signIn') : undefined));
    return null;
  }

  /** The task a command is about: from the tree, an id, or picked from the list. */
  private async pickTask(arg: unknown, placeHolder: string): Promise<Task | null> {
    const session = this.needSession();
    if (!session) return null;
    let id: string | undefined;
    if (typeof arg === 'string') id = arg;
    else if (arg && typeof arg === 'object' && 'task' in arg) id = (arg as { task: Task }).task.id;
    else if (arg && typeof arg === 'object' && 'id' in arg) id = (arg as Task).id;
    if (!id) {
      const tasks = [...session.state.tasks.values()];
      const picked = await vscode.window.showQuickPick(
        tasks.map((t) => ({ label: taskLabel(t), description: `${STATUS_LABELS[t.status]} · ${t.priority}`, id: t.id })),
        { placeHolder },
      );
      id = picked?.id;
    }
    if (!id) return null;
    const held = session.state.tasks.get(id);
    if (held) return held;
    try {
      return await session.api.getTask(id);
    } catch (err) {
      await this.errors.report(err);
      return null;
    }
  }

  /** Runs a write on the version read; on a lost race, says whose change won and offers to retry on top. */
  private async write<T>(task: Task, what: string, run: (task: Task) => Promise<T>): Promise<T | null> {
    const session = this.session;
    if (!session) return null;
    let current = task;
    for (;;) {
      try {
        const result = await run(current);
        const written = result as unknown as { id?: string; version?: number; task?: Task | null };
        if (written && typeof written === 'object' && written.id && written.version) session.state.put(written as unknown as Task);
        else if (written?.task) session.state.put(written.task);
        this.tree.refresh();
        this.showStatus(session.status);
        return result;
      } catch (err) {
        if (!(err instanceof ApiError) || err.kind !== 'conflict') {
          await this.errors.report(err);
          return null;
        }
        const latest = err.current ?? (await session.api.getTask(task.id).catch(() => null));
        if (!latest) {
          await this.errors.report(err);
          return null;
        }
        session.state.put(latest);
        this.tree.refresh();
        const choice = await vscode.window.showWarningMessage(
          `Task MCP: ${latest.updated_by} changed “${taskLabel(latest)}” first (now ${STATUS_LABELS[latest.status]}, ` +
            `version ${latest.version}); ${what} was not applied.`,
          'Retry',
          'Open Task',
        );
        if (choice === 'Open Task') await this.openTask(latest.id);
        if (choice !== 'Retry') return null;
        current = latest;
      }
    }
  }

  async openTask(id: string): Promise<void> {
    const session = this.needSession();
    if (!session) return;
    const task = session.state.tasks.get(id) ?? (await session.api.getTask(id).catch(() => null));
    if (!task) {
      await vscode.window.showErrorMessage('Task MCP: that task no longer exists.');
      return;
    }
    const uri = TaskDocuments.uri(task);
    this.documents.taskChanged(task.id);
    await vscode.commands.executeCommand('markdown.showPreview', uri);
  }

  async changeStatus(id: string, status: Status, comment?: string): Promise<Task | null> {
    const task = await this.pickTask(id, 'Task to change');
    if (!task || !this.session) return null;
    const api = this.session.api;
    return this.write(task, `setting the status to ${STATUS_LABELS[status]}`, (t) =>
      api.setStatus(t.id, status, t.version, comment),
    );
  }

  private registerCommands(): void {
    const register = (id: string, run: (...args: unknown[]) => unknown) =>
      this.context.subscriptions.push(vscode.commands.registerCommand(id, run));

    register('taskMcp.signIn', async () => {
      const input = await vscode.window.showInputBox({
        title: 'Task MCP: Sign In',
        prompt: 'Paste the dashboard link `task-mcp serve` printed (…/#token=…), or a token from `task-mcp token`',
        password: true,
        ignoreFocusOut: true,
      });
      if (input === undefined) return;
      const parsed = parseSignIn(input);
      if (!parsed) {
        await vscode.window.showErrorMessage('Task MCP: no token in that text. Paste the whole link or the token.');
        return;
      }
      if (parsed.serverUrl && parsed.serverUrl !== this.serverUrl()) {
        await vscode.workspace
          .getConfiguration('taskMcp')
          .update('serverUrl', parsed.serverUrl, vscode.ConfigurationTarget.Global);
      }
      const api = new TaskApi({ baseUrl: parsed.serverUrl ?? this.serverUrl(), token: parsed.token });
      try {
        const me = await api.me();
        await this.context.secrets.store(TOKEN_KEY, parsed.token);
        this.errors.clear();
        await this.reconnect();
        void vscode.window.showInformationMessage(`Task MCP: signed in as ${me.email}.`);
      } catch (err) {
        if (err instanceof ApiError && err.kind === 'offline') {
          // Kept: the server may simply not run yet.
          await this.context.secrets.store(TOKEN_KEY, parsed.token);
          await this.reconnect();
          return;
        }
        await this.errors.report(err);
      }
    });

    register('taskMcp.signOut', async () => {
      await this.context.secrets.delete(TOKEN_KEY);
      await this.disconnect();
      await vscode.commands.executeCommand('setContext', 'taskMcp.signedIn', false);
      this.showStatus('signed-out');
      this.view.message = 'Signed out.';
      this.tree.refresh();
      const env = process.env.TASK_MCP_TOKEN ? ' TASK_MCP_TOKEN is still set: it is used at the next start.' : '';
      void vscode.window.showInformationMessage(`Task MCP: signed out; the stored token is forgotten.${env}`);
    });

    register('taskMcp.refresh', async () => {
      if (this.session?.me) {
        this.session.stream.retryNow();
        await this.session.reload();
      } else await this.reconnect();
    });

    register('taskMcp.toggleAssignedToMe', () => this.setMineOnly(!this.mineOnly));

    register('taskMcp.openTask', async (arg) => {
      const task = await this.pickTask(arg, 'Task to open');
      if (task) await this.openTask(task.id);
    });

    register('taskMcp.setStatus', async (arg) => {
      const task = await this.pickTask(arg, 'Task to change');
      if (!task) return;
      const picked = await vscode.window.showQuickPick(
        STATUSES.filter((s) => s !== task.status).map((s) => ({ label: STATUS_LABELS[s], status: s })),
        { placeHolder: `Status of “${taskLabel(task)}” (now ${STATUS_LABELS[task.status]})` },
      );
      if (picked) await this.changeStatus(task.id, picked.status);
    });

    register('taskMcp.comment', async (arg) => {
      const task = await this.pickTask(arg, 'Task to comment on');
      if (!task || !this.session) return;
      const text = await vscode.window.showInputBox({ prompt: `Comment on “${taskLabel(task)}”`, ignoreFocusOut: true });
      if (!text?.trim()) return;
      const api = this.session.api;
      const done = await this.write(task, 'the comment', (t) => api.addComment(t.id, text, t.version));
      if (done) this.documents.taskChanged(task.id);
    });

    register('taskMcp.claim', async (arg) => {
      if (!(await this.claimsOrSay())) return;
      const task = await this.pickTask(arg, 'Task to claim');
      if (!task || !this.session) return;
      const api = this.session.api;
      const result = await this.write(task, 'the claim', (t) => api.claim(t.id, t.version));
      if (result?.task) void vscode.window.showInformationMessage(`Task MCP: you hold “${taskLabel(result.task)}”.`);
    });

    register('taskMcp.release', async (arg) => {
      if (!(await this.claimsOrSay())) return;
      const task = await this.pickTask(arg, 'Task to release');
      if (!task || !this.session) return;
      const api = this.session.api;
      await this.write(task, 'the release', (t) => api.release(t.id, t.version));
    });

    register('taskMcp.claimNext', async () => {
      const session = this.needSession();
      if (!session || !(await this.claimsOrSay())) return;
      try {
        const result = await session.api.claimNext(session.state.scope.repository);
        if (!result.task) {
          await vscode.window.showInformationMessage(`Task MCP: nothing to claim. ${result.reason ?? ''}`.trim());
          return;
        }
        session.state.put(result.task);
        this.tree.refresh();
        const choice = await vscode.window.showInformationMessage(
          `Task MCP: you hold “${taskLabel(result.task)}” now.`,
          'Open',
        );
        if (choice === 'Open') await this.openTask(result.task.id);
      } catch (err) {
        await this.errors.report(err);
      }
    });

    register('taskMcp.openInDashboard', async (arg) => {
      const task = await this.pickTask(arg, 'Task to open in the dashboard');
      if (!task) return;
      await vscode.env.openExternal(vscode.Uri.parse(`${this.serverUrl().replace(/\/+$/, '')}/?task=${task.id}`));
    });

    register('taskMcp.newTask', async () => {
      const session = this.needSession();
      if (!session) return;
      const title = await vscode.window.showInputBox({ prompt: 'Title of the new task', ignoreFocusOut: true });
      if (!title?.trim()) return;
      const priority = await vscode.window.showQuickPick(
        PRIORITIES.map((p) => ({ label: p })),
        { placeHolder: 'Priority' },
      );
      if (!priority) return;
      const description = await vscode.window.showInputBox({ prompt: 'Description (optional)', ignoreFocusOut: true });
      if (description === undefined) return;
      try {
        const task = await session.api.createTask({
          title: title.trim(),
          priority: priority.label,
          ...(description.trim() ? { description: description.trim() } : {}),
          ...(session.state.scope.repository ? { repository: session.state.scope.repository } : {}),
        });
        session.state.put(task);
        this.tree.refresh();
        void vscode.window.showInformationMessage(`Task MCP: created “${taskLabel(task)}”.`);
      } catch (err) {
        await this.errors.report(err);
      }
    });
  }

  /** Whether this server has claims; if not, says so and offers the nearest thing. */
  private async claimsOrSay(): Promise<boolean> {
    if (this.session?.features.claims) return true;
    await vscode.window.showInformationMessage(
      'Task MCP: this server has no claims (an older task-mcp). Use “Set Status” → In progress to take a task.',
    );
    return false;
  }
}

let current: TaskMcpExtension | null = null;

export async function activate(context: vscode.ExtensionContext): Promise<TaskMcpExtension> {
  current = new TaskMcpExtension(context);
  void current.reconnect();
  return current;
}

export async function deactivate(): Promise<void> {
  current = null;
}

// Kept visible to tests of the sign-in input.
export { parseSignIn, tokenSubject };
