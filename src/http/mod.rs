//! `serve` (stub: being written).
pub mod auth;
pub mod dashboard;
pub async fn serve(_app: crate::app::App, _args: crate::cli::ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented")
}
