//! The store contract, written once and run against every backend (stub: being written).
