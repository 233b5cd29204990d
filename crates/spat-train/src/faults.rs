//! The named fault points of a run directory's file protocol, for tests that kill the process at
//! each one and check that the run resumes to the same bits.
//!
//! Every atomic write of [`crate::Run`] is observed at each [`WriteStage`] (before the temporary
//! file is written, after it is written, after its fsync, after the rename, after the directory
//! fsync), and the removal of the previous checkpoint generation after each file and after the
//! directory fsync. A point is `<scope>.<stage>`, e.g. `commit.state.renamed`.
//!
//! Built with the `failpoints` feature (off by default), each point is a `fail` point (TiKV's
//! `fail` crate): a binary that calls `fail::FailScenario::setup()` reads them from `FAILPOINTS`,
//! and the action `return` makes the process exit at once with [`EXIT_STATUS`], running no
//! destructor and writing nothing more, as a kill would (`FAILPOINTS='commit.state.renamed=1*off->return'`
//! exits at the point's second hit). Without the feature the points compile to nothing.

use spat_spec::fs::WriteStage;

/// Exit status of a process stopped at a fault point.
pub const EXIT_STATUS: i32 = 86;

/// The observed writes, in the order a run performs them: `open.config` once when a run is
/// created; the `commit.*` writes for every epoch (`commit.best` only when the epoch is the best
/// so far; `commit.curves_json` and `commit.curves_png` are `curves.json` and `curves.png`); the
/// `finish.*` writes once at the end.
pub const WRITES: [&str; 10] = [
    "open.config",
    "commit.checkpoint",
    "commit.optimizer",
    "commit.state",
    "commit.best",
    "commit.metrics",
    "commit.curves_json",
    "commit.curves_png",
    "finish.model",
    "finish.summary",
];

/// The last write of a commit, after which the previous generation is removed.
const LAST_COMMIT_WRITE: &str = "commit.curves_png";

/// The removal of the previous generation's files, from the second commit on.
pub const PRUNE: [&str; 3] = [
    "commit.prune.checkpoint_removed",
    "commit.prune.optimizer_removed",
    "commit.prune.dir_synced",
];

/// Every fault point, in the order a run reaches them.
pub fn points() -> Vec<String> {
    let mut all = Vec::new();
    for scope in WRITES {
        for stage in WriteStage::ALL {
            all.push(format!("{scope}.{}", stage.as_str()));
        }
        if scope == LAST_COMMIT_WRITE {
            all.extend(PRUNE.iter().map(|p| p.to_string()));
        }
    }
    all
}

/// Reaches the point `name`.
pub(crate) fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    fail::fail_point!(name, |_| std::process::exit(EXIT_STATUS));
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// An observer for [`spat_spec::fs::write_atomic_observed`] that reaches `<scope>.<stage>`.
pub(crate) fn writes(scope: &'static str) -> impl FnMut(WriteStage) {
    move |_stage| {
        #[cfg(feature = "failpoints")]
        hit(&format!("{scope}.{}", _stage.as_str()));
        #[cfg(not(feature = "failpoints"))]
        let _ = scope;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn points_are_unique_and_follow_the_protocol_order() {
        let points = super::points();
        assert_eq!(points.len(), 10 * 5 + 3);
        let unique: std::collections::BTreeSet<_> = points.iter().collect();
        assert_eq!(unique.len(), points.len());
        assert_eq!(points[0], "open.config.start");
        let at = |p: &str| points.iter().position(|q| q == p).unwrap();
        assert!(at("commit.optimizer.dir_synced") < at("commit.state.start"));
        assert!(at("commit.state.dir_synced") < at("commit.best.start"));
        assert!(at("commit.metrics.dir_synced") < at("commit.curves_json.start"));
        assert!(at("commit.curves_json.dir_synced") < at("commit.curves_png.start"));
        assert!(at("commit.curves_png.dir_synced") < at("commit.prune.checkpoint_removed"));
        assert!(at("commit.prune.dir_synced") < at("finish.model.start"));
    }
}
