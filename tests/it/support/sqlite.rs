//! A SQLite file of its own for one test, removed with its directory when dropped.

pub struct TestFile {
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl TestFile {
    pub fn create() -> TestFile {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("tasks.db").display());
        TestFile { url, dir }
    }
}
