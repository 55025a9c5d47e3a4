/** A task as Markdown, for the read-only preview: its fields, description, comments and history. */

import { STATUS_LABELS, type Comment, type HistoryRow, type Task } from './types';
import { taskLabel } from './state';

/** Text as Markdown that shows it literally (no links, emphasis or HTML from task text). */
function escape(text: string): string {
  return text.replace(/([\\`*_{}[\]()#+\-.!|<>~])/g, '\\$1');
}

function quote(text: string): string {
  return text
    .split(/\r?\n/)
    .map((line) => `> ${escape(line)}`)
    .join('\n');
}

export function taskMarkdown(task: Task, comments: Comment[], history: HistoryRow[]): string {
  const lines: string[] = [`# ${escape(taskLabel(task))}`, ''];
  const rows: [string, string][] = [
    ['Status', STATUS_LABELS[task.status] ?? task.status],
    ['Priority', task.priority],
    ['Complexity', task.complexity],
    ['Assignee', task.assignee_email ?? 'nobody'],
    ['Repository', task.repository ?? '—'],
    ['Created', `${task.created_at} by ${task.created_by}`],
    ['Updated', `${task.updated_at} by ${task.updated_by}`],
    ['Version', String(task.version)],
  ];
  if (task.claim) {
    const agent = task.claim.agent ? ` (${task.claim.agent})` : '';
    rows.push(['Claimed by', `${task.claim.holder}${agent} until ${task.claim.expires_at ?? '?'}`]);
  }
  lines.push('| | |', '| --- | --- |', ...rows.map(([k, v]) => `| ${k} | ${escape(v)} |`), '');
  lines.push('## Description', '', task.description ? escape(task.description) : '_No description._', '');
  lines.push(`## Comments (${comments.length})`, '');
  if (!comments.length) lines.push('_No comments._', '');
  for (const c of comments) lines.push(`**${escape(c.author)}** · ${c.created_at}`, '', quote(c.comment), '');
  lines.push('## History', '');
  for (const h of history) {
    const change =
      h.field_changed === 'created'
        ? 'created the task'
        : h.field_changed === 'comment'
          ? 'commented'
          : `${h.field_changed}: ${h.old_value ?? '—'} → ${h.new_value ?? '—'}`;
    const why = h.comment ? ` — ${h.comment}` : '';
    lines.push(`- ${h.changed_at} · ${escape(h.changed_by)} · ${escape(change + why)}`);
  }
  return `${lines.join('\n')}\n`;
}
