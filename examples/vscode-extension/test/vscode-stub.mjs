// A stand-in for the `vscode` module: the part of the API the extension uses, recording what it shows
// (messages, tree refreshes, status-bar text, previews, context keys) and answering prompts from a script.
// `install()` makes `require('vscode')` return it.

import Module from 'node:module';

export function createVscode({ settings = {}, workspaceFolder } = {}) {
  const record = {
    messages: [], // { level, text, actions }
    commands: new Map(), // id -> handler
    executed: [], // [id, ...args] of commands the extension executed
    treeViews: new Map(), // id -> view
    treeRefreshes: 0,
    statusBar: [],
    contexts: {},
    configRead: new Set(),
    previews: [],
    opened: [],
    contentProviders: new Map(),
  };
  // Answers to prompts, consumed in order: functions of the prompt's arguments.
  const answers = { message: [], quickPick: [], inputBox: [] };
  const next = (queue, ...args) => {
    const answer = queue.shift();
    return Promise.resolve(typeof answer === 'function' ? answer(...args) : answer);
  };

  class EventEmitter {
    constructor() { this.listeners = new Set(); }
    get event() {
      return (listener) => {
        this.listeners.add(listener);
        return { dispose: () => this.listeners.delete(listener) };
      };
    }
    fire(value) { for (const l of [...this.listeners]) l(value); }
    dispose() { this.listeners.clear(); }
  }

  class Uri {
    constructor(scheme, path, query = '', authority = '') {
      Object.assign(this, { scheme, path, query, authority, fsPath: path });
    }
    static parse(text) {
      const u = new URL(text);
      return new Uri(u.protocol.replace(/:$/, ''), decodeURIComponent(u.pathname), u.search.slice(1), u.host);
    }
    static file(path) { return new Uri('file', path); }
    toString() { return `${this.scheme}:${this.authority ? `//${this.authority}` : ''}${this.path}${this.query ? `?${this.query}` : ''}`; }
  }

  class TreeItem {
    constructor(label, collapsibleState = 0) { Object.assign(this, { label, collapsibleState }); }
  }

  const message = (level) => (text, ...actions) => {
    const entry = { level, text, actions: actions.filter((a) => typeof a === 'string'), at: Date.now() };
    record.messages.push(entry);
    return next(answers.message, entry);
  };

  const secrets = new Map();
  const secretsChanged = new EventEmitter();
  const configChanged = new EventEmitter();
  const workspaceState = new Map();

  const vscode = {
    EventEmitter,
    Uri,
    TreeItem,
    TreeItemCollapsibleState: { None: 0, Collapsed: 1, Expanded: 2 },
    ThemeIcon: class { constructor(id) { this.id = id; } },
    MarkdownString: class { constructor(value = '') { this.value = value; } },
    StatusBarAlignment: { Left: 1, Right: 2 },
    ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
    window: {
      showInformationMessage: message('info'),
      showWarningMessage: message('warning'),
      showErrorMessage: message('error'),
      showQuickPick: (items, options) => Promise.resolve(items).then((list) => next(answers.quickPick, list, options)),
      showInputBox: (options) => next(answers.inputBox, options),
      createTreeView(id, { treeDataProvider }) {
        const view = { id, provider: treeDataProvider, message: undefined, dispose() {} };
        treeDataProvider.onDidChangeTreeData?.(() => record.treeRefreshes++);
        record.treeViews.set(id, view);
        return view;
      },
      createStatusBarItem() {
        const item = {
          text: '', tooltip: '', command: undefined, visible: false,
          show() { this.visible = true; record.statusBar.push(this.text); },
          hide() { this.visible = false; },
          dispose() {},
        };
        return item;
      },
    },
    commands: {
      registerCommand(id, handler) {
        if (record.commands.has(id)) throw new Error(`command ${id} registered twice`);
        record.commands.set(id, handler);
        return { dispose: () => record.commands.delete(id) };
      },
      async executeCommand(id, ...args) {
        record.executed.push([id, ...args]);
        if (id === 'setContext') {
          record.contexts[args[0]] = args[1];
          return undefined;
        }
        if (id === 'markdown.showPreview') {
          const uri = args[0];
          const provider = record.contentProviders.get(uri.scheme);
          record.previews.push({ uri, text: provider ? await provider.provideTextDocumentContent(uri) : null });
          return undefined;
        }
        const handler = record.commands.get(id);
        return handler ? handler(...args) : undefined;
      },
    },
    workspace: {
      workspaceFolders: workspaceFolder ? [{ uri: Uri.file(workspaceFolder), name: 'ws', index: 0 }] : undefined,
      getConfiguration(section) {
        return {
          get(key, fallback) {
            record.configRead.add(`${section}.${key}`);
            const value = settings[`${section}.${key}`];
            return value === undefined ? fallback : value;
          },
          async update(key, value) {
            settings[`${section}.${key}`] = value;
            configChanged.fire({ affectsConfiguration: (s) => `${section}.${key}`.startsWith(s) });
          },
        };
      },
      onDidChangeConfiguration: configChanged.event,
      registerTextDocumentContentProvider(scheme, provider) {
        record.contentProviders.set(scheme, provider);
        return { dispose() {} };
      },
    },
    env: {
      openExternal: async (uri) => {
        record.opened.push(uri.toString());
        return true;
      },
    },
  };

  const context = {
    subscriptions: [],
    secrets: {
      get: async (key) => secrets.get(key),
      store: async (key, value) => {
        secrets.set(key, value);
        secretsChanged.fire({ key });
      },
      delete: async (key) => {
        secrets.delete(key);
        secretsChanged.fire({ key });
      },
      onDidChange: secretsChanged.event,
    },
    workspaceState: {
      get: (key, fallback) => (workspaceState.has(key) ? workspaceState.get(key) : fallback),
      update: async (key, value) => workspaceState.set(key, value),
    },
  };

  return { vscode, context, record, answers, secrets, settings };
}

/** Makes `require('vscode')` return `stub` (the real module exists only inside VS Code). */
export function install(stub) {
  const load = Module._load;
  Module._load = function (request, ...rest) {
    if (request === 'vscode') return stub;
    return load.call(this, request, ...rest);
  };
  return () => { Module._load = load; };
}
