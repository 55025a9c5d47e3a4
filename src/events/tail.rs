//! `events tail` (stub: being written).
pub async fn run(
    _app: crate::app::App,
    _assignee: Option<String>,
    _repository: Option<String>,
    _after: Option<i64>,
) -> anyhow::Result<()> {
    anyhow::bail!("not implemented")
}
