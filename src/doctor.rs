//! `doctor` (stub: being written).
pub async fn run(_app: &crate::app::App) -> bool {
    false
}
