//! Library side of `cargo xtask`, so that integration tests can call the tasks directly. The
//! reproduction harness is its own crate, `spat-reproduce`.

pub mod fetch;
