/** The workspace's repository name: the git remote's repository name (origin first), else the folder's name. */

import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** The repository name in a remote URL: `git@host:team/web.git` and `https://host/team/web` give `web`. */
export function nameFromRemote(url: string): string | null {
  const trimmed = url.trim().replace(/\/+$/, '').replace(/\.git$/, '');
  const last = trimmed.split(/[/:]/).pop();
  return last ? last : null;
}

/** The `.git` directory holding the config of the checkout at `folder` (worktrees point to their main one). */
function gitConfigPath(folder: string): string | null {
  const dotGit = path.join(folder, '.git');
  if (!existsSync(dotGit)) return null;
  let gitDir = dotGit;
  if (statSync(dotGit).isFile()) {
    const line = readFileSync(dotGit, 'utf8').match(/^gitdir:\s*(.+)$/m);
    if (!line) return null;
    gitDir = path.resolve(folder, line[1].trim());
    const common = path.join(gitDir, 'commondir');
    if (existsSync(common)) gitDir = path.resolve(gitDir, readFileSync(common, 'utf8').trim());
  }
  const config = path.join(gitDir, 'config');
  return existsSync(config) ? config : null;
}

/** The URLs of the remotes in a git config text, by remote name. */
export function remotesIn(configText: string): Map<string, string> {
  const remotes = new Map<string, string>();
  let current: string | null = null;
  for (const raw of configText.split(/\r?\n/)) {
    const line = raw.trim();
    const section = line.match(/^\[remote\s+"([^"]+)"\]$/);
    if (section) {
      current = section[1];
      continue;
    }
    if (line.startsWith('[')) {
      current = null;
      continue;
    }
    const url = line.match(/^url\s*=\s*(.+)$/);
    if (current && url && !remotes.has(current)) remotes.set(current, url[1].trim());
  }
  return remotes;
}

/** The repository of a workspace folder. */
export function detectRepository(folder: string): string {
  try {
    const config = gitConfigPath(folder);
    if (config) {
      const remotes = remotesIn(readFileSync(config, 'utf8'));
      const url = remotes.get('origin') ?? remotes.values().next().value;
      const name = url ? nameFromRemote(url) : null;
      if (name) return name;
    }
  } catch {
    // An unreadable checkout is named by its folder.
  }
  return path.basename(path.resolve(folder));
}
