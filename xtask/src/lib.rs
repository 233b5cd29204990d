//! Library side of `cargo xtask`, so that integration tests can call the tasks directly.

pub mod claims;
pub mod fetch;
pub mod matrix;
pub mod paper;
pub mod protocol;
pub mod report;
pub mod reproduce;
