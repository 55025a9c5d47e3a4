//! Authentication (stub: being written).
use crate::app::App;
pub async fn issue_token_command(_app: &App, _args: &crate::cli::TokenArgs) -> anyhow::Result<String> {
    anyhow::bail!("not implemented")
}
pub async fn create_api_key_command(_app: &App, _name: &str) -> anyhow::Result<String> {
    anyhow::bail!("not implemented")
}
pub async fn list_api_keys_command(_app: &App) -> anyhow::Result<Vec<String>> {
    anyhow::bail!("not implemented")
}
