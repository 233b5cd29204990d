//! Library side of `cargo xtask`, so that integration tests can call the tasks directly.

pub mod fetch;
