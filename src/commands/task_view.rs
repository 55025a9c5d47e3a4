//! How the terminal task commands show tasks to a person: a table for a listing, a page for one task,
//! one line after a change. Colour only when stdout is a terminal and `NO_COLOR` is not set.

use comfy_table::presets::NOTHING;
use comfy_table::{Attribute, Cell, Color, ContentArrangement, Table};

use crate::domain::{Priority, Status, Task};
use crate::service::TaskDetail;

/// Whether the output may carry colour and fit itself to the terminal's width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub terminal: bool,
}

impl Style {
    /// Styled when the output goes to a terminal, unless `NO_COLOR` is set to anything (no-color.org).
    pub fn new(to_terminal: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style { terminal: to_terminal && !no_color }
    }

    fn paint(self, text: &str, color: Option<Color>) -> String {
        match (self.terminal, color.and_then(ansi)) {
            (true, Some(code)) => format!("\x1b[{code}m{text}\x1b[0m"),
            _ => text.to_owned(),
        }
    }
}

fn ansi(color: Color) -> Option<u8> {
    Some(match color {
        Color::Red => 31,
        Color::Green => 32,
        Color::Yellow => 33,
        Color::Blue => 34,
        Color::Magenta => 35,
        Color::Cyan => 36,
        Color::DarkGrey => 90,
        _ => return None,
    })
}

fn status_color(status: Status) -> Option<Color> {
    match status {
        Status::NotStarted => None,
        Status::InProgress => Some(Color::Cyan),
        Status::Blocked => Some(Color::Yellow),
        Status::Completed => Some(Color::Green),
        Status::Cancelled => Some(Color::DarkGrey),
    }
}

fn priority_color(priority: Priority) -> Option<Color> {
    match priority {
        Priority::Urgent => Some(Color::Red),
        Priority::High => Some(Color::Yellow),
        _ => None,
    }
}

/// How a task is named to a person: its key (every command accepts it), or its id for a task that
/// has none (read from an event written before keys existed).
pub fn task_name(task: &Task) -> String {
    if task.key.is_empty() { task.id.to_string() } else { task.key.clone() }
}

/// A listing as a table: one row a task; the repository column only when the listing spans several.
pub fn render_table(tasks: &[Task], show_repository: bool, more: bool, style: Style) -> String {
    if tasks.is_empty() {
        return "No tasks.".to_owned();
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    if style.terminal {
        table.enforce_styling();
        // Fit long titles to the terminal by wrapping them, when its width is known and usable.
        if table.width().is_some_and(|width| width >= 60) {
            table.set_content_arrangement(ContentArrangement::Dynamic);
        }
    } else {
        table.force_no_tty();
    }
    let mut header = vec!["TASK", "STATUS", "PRIORITY", "ASSIGNEE"];
    if show_repository {
        header.push("REPOSITORY");
    }
    header.push("TITLE");
    table.set_header(header.into_iter().map(|h| Cell::new(h).add_attribute(Attribute::Bold)));
    for task in tasks {
        let mut status = Cell::new(task.status.as_str());
        if let Some(color) = status_color(task.status) {
            status = status.fg(color);
        }
        let mut priority = Cell::new(task.priority.as_str());
        if let Some(color) = priority_color(task.priority) {
            priority = priority.fg(color);
        }
        let mut row = vec![
            Cell::new(task_name(task)),
            status,
            priority,
            Cell::new(task.assignee_email.as_deref().unwrap_or("-")),
        ];
        if show_repository {
            row.push(Cell::new(task.repository.as_deref().unwrap_or("-")));
        }
        row.push(Cell::new(&task.title));
        table.add_row(row);
    }
    let mut text = table.trim_fmt();
    if more {
        text.push_str(&format!("\n(first {} shown: narrow the listing or raise --limit)", tasks.len()));
    }
    text
}

/// One line naming a task after a change: its name, status and title.
pub fn render_task_line(task: &Task, style: Style) -> String {
    format!(
        "{}  {}  {}",
        style.paint(&task_name(task), Some(Color::Blue)),
        style.paint(task.status.as_str(), status_color(task.status)),
        task.title
    )
}

/// One task for reading: its fields, description, comments and history.
pub fn render_detail(detail: &TaskDetail, style: Style) -> String {
    let task = &detail.task;
    let when = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let mut lines = vec![
        format!("{}  {}", style.paint(&task_name(task), Some(Color::Blue)), task.title),
        format!(
            "status: {}   priority: {}   complexity: {}",
            style.paint(task.status.as_str(), status_color(task.status)),
            style.paint(task.priority.as_str(), priority_color(task.priority)),
            task.complexity
        ),
        format!(
            "assignee: {}   repository: {}",
            task.assignee_email.as_deref().unwrap_or("-"),
            task.repository.as_deref().unwrap_or("-")
        ),
        format!(
            "created {} by {}; updated {} by {} (version {})",
            when(task.created_at),
            task.created_by,
            when(task.updated_at),
            task.updated_by,
            task.version
        ),
    ];
    if let Some(description) = &task.description {
        lines.push(String::new());
        lines.extend(description.lines().map(|line| format!("  {line}")));
    }
    if !detail.comments.is_empty() {
        lines.push(String::new());
        lines.push(format!("Comments ({})", detail.comments.len()));
        for comment in &detail.comments {
            lines.push(format!("  {} {}: {}", when(comment.created_at), comment.author, comment.comment));
        }
    }
    if !detail.history.is_empty() {
        lines.push(String::new());
        lines.push("History".to_owned());
        for entry in &detail.history {
            let change = match (&entry.old_value, &entry.new_value) {
                (Some(old), Some(new)) => format!("{}: {old} → {new}", entry.field_changed),
                (None, Some(new)) => format!("{}: {new}", entry.field_changed),
                _ => entry.field_changed.clone(),
            };
            lines.push(format!("  {} {}: {change}", when(entry.changed_at), entry.changed_by));
        }
    }
    lines.join("\n")
}
