//! The one integration-test binary: real PostgreSQL, real Redis, real SQLite files, the real binary.

mod support;

mod sqlite_store;
mod store_contract;
