//! The command-line commands beside `stdio` and `serve`, one file each: `token`, `api-key`,
//! `events tail`, `doctor`, `migrate`, `health`, `export` / `import` / `copy` (`transfer`), and the task commands for people at a terminal (`tasks`, shown
//! by `task_view`). Their output is their purpose, so they alone print to stdout.

pub mod api_key;
pub mod doctor;
pub mod events_tail;
pub mod health;
pub mod migrate;
pub mod task_view;
pub mod tasks;
pub mod token;
pub mod transfer;

use crate::config::Settings;
use crate::domain::Actor;

/// The identity a command speaks for: `--user`, else the process identity (git, then the OS user).
async fn acting_user(settings: &Settings) -> anyhow::Result<Actor> {
    let user = settings.user.clone();
    let actor = tokio::task::spawn_blocking(move || crate::config::resolve_actor(user.as_deref())).await??;
    Ok(actor)
}
