//! `cargo xtask tune`: a budgeted search for the best training radius ε and SPAT weight α of an
//! adversarial-training method, by asynchronous successive halving ([`asha`]) over resumable
//! `spat train` runs, reported as a table and a heat map ([`report`]).

pub mod asha;
pub mod report;
