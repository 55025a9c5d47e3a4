//! A PostgreSQL database of its own for one test (stub: being written).

pub struct TestDatabase {
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        unimplemented!()
    }
}
