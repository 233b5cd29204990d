//! The reproduction harness behind `cargo xtask reproduce`: the thesis's numbers as data, the run
//! matrix of every table and figure, the cells that run it through the `spat` binary (under
//! per-cell locks, on several slots or as Slurm job arrays), and the reports that set spat's
//! numbers beside the paper's. It links no ML code, so it builds in seconds.
#![warn(missing_docs)]

pub mod cell;
pub mod claims;
pub mod command;
pub mod data;
pub mod lock;
pub mod markdown;
pub mod matrix;
pub mod outputs;
pub mod paper;
pub mod protocol;
pub mod report;
pub mod reproduce;
pub mod runner;
pub mod schedule;
pub mod slurm;
pub mod tune;
pub mod workspace;

// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
