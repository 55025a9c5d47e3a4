//! MCP over stdin/stdout (stub: being written).
pub async fn run(_app: crate::app::App) -> anyhow::Result<()> {
    anyhow::bail!("not implemented")
}
