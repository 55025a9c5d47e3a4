//! A SQLite file of its own for one test, removed with its directory when dropped.

use std::path::PathBuf;

pub struct TestFile {
    pub url: String,
    /// The database file (not created yet: the store creates it on first use).
    pub path: PathBuf,
    pub dir: tempfile::TempDir,
}

impl TestFile {
    pub fn create() -> TestFile {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tasks.db");
        let url = format!("sqlite://{}", path.display());
        TestFile { url, path, dir }
    }
}
