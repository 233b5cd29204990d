//! The upper bound of every count spat takes from a user, and why.
//!
//! A count of work (steps, restarts, epochs, images) is bounded by what can finish: far above
//! anything the thesis, the reference code or RobustBench runs, and far below what would run for
//! days or overflow. The command line, attack specs and run configurations all check counts here,
//! so `pgd4294967296`, `--steps 4000000000` and `--classes 18446744073709551615` are refused
//! at once, naming the option and the bound.

use crate::Error;

/// A bound on one kind of count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The largest value accepted.
    pub max: usize,
    /// Why it is the largest, for the error message.
    pub why: &'static str,
}

/// Iterations of one attack: PGD steps, APGD and FAB iterations, Square queries (AutoAttack's
/// largest is Square's 5,000; PGD-1000 is the longest in common use).
pub const ATTACK_STEPS: Limit = Limit {
    max: 100_000,
    why: "20x the longest attack AutoAttack runs",
};
/// Restarts of one attack (AutoAttack runs 1 to 5, RST's evaluation 5).
pub const RESTARTS: Limit = Limit {
    max: 1_000,
    why: "far more restarts than any evaluation uses",
};
/// Target classes of APGD-T and FAB-T (AutoAttack: 9), EOT passes per step (20).
pub const ATTACK_REPEATS: Limit = Limit {
    max: 1_000,
    why: "far more than any evaluation uses",
};
/// Forward-backward passes per example of one attack, all its counts multiplied: 1,000,000 is
/// over a hundred times AutoAttack's standard version.
pub const ATTACK_PASSES: Limit = Limit {
    max: 1_000_000,
    why: "over 100x AutoAttack's passes per image",
};
/// Epochs of a run (the thesis trains 90 to 200).
pub const EPOCHS: Limit = Limit {
    max: 100_000,
    why: "500x the longest schedule of the thesis",
};
/// Images per batch.
pub const BATCH: Limit = Limit {
    max: 65_536,
    why: "a batch larger than CIFAR-10's training set would not fit in any device's memory",
};
/// Images of a subset (more than a split holds means the whole split).
pub const IMAGES: Limit = Limit {
    max: 1 << 30,
    why: "more images than any data set spat reads",
};
/// Output classes of a model (ImageNet-21k has 21,841).
pub const CLASSES: Limit = Limit {
    max: 100_000,
    why: "more classes than any image data set has",
};
/// Values in a list option (α values of a sweep, rows of a figure, attacks of an evaluation).
pub const LIST: Limit = Limit {
    max: 1_000,
    why: "a longer list is not a figure or table anyone reads",
};
/// Repetitions of a timing (`bench --repeats`, `--warmup`).
pub const REPEATS: Limit = Limit {
    max: 10_000,
    why: "a median over more runs says nothing more",
};
/// Processes, threads or CPUs asked for (`--jobs`, Slurm's `--cpus-per-task`).
pub const WORKERS: Limit = Limit {
    max: 4_096,
    why: "more than any machine or Slurm node has",
};

/// Checks a count: positive and at most `limit.max`; `what` names it (`--epochs`,
/// `attack \`pgd0\``).
pub fn check_count(what: &str, n: usize, limit: Limit) -> Result<usize, Error> {
    if n == 0 {
        return Err(Error::Invalid(format!(
            "{}`0` is not a positive integer",
            prefix(what)
        )));
    }
    if n > limit.max {
        return Err(above(what, &n.to_string(), limit));
    }
    Ok(n)
}

/// `what: ` ahead of a message, or nothing when the caller names the option itself (clap does).
fn prefix(what: &str) -> String {
    if what.is_empty() {
        String::new()
    } else {
        format!("{what}: ")
    }
}

fn above(what: &str, n: &str, limit: Limit) -> Error {
    Error::Invalid(format!(
        "{}{n} is above the limit of {} ({})",
        prefix(what),
        limit.max,
        limit.why
    ))
}

/// Parses a count written as decimal digits, then [`check_count`]s it; a number too large for
/// the machine is reported against the limit too, never wrapped.
pub fn parse_count(what: &str, text: &str, limit: Limit) -> Result<usize, Error> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Invalid(format!(
            "{}`{text}` is not a positive integer",
            prefix(what)
        )));
    }
    match t.parse::<usize>() {
        Ok(n) => check_count(what, n, limit),
        Err(_) => Err(above(what, t, limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_positive_and_bounded_and_never_wrap() {
        assert_eq!(parse_count("--epochs", " 90 ", EPOCHS).unwrap(), 90);
        for (text, needle) in [
            ("0", "not a positive integer"),
            ("-3", "not a positive integer"),
            ("1e3", "not a positive integer"),
            ("", "not a positive integer"),
            ("100001", "above the limit of 100000"),
            ("18446744073709551615", "above the limit"),
            ("99999999999999999999999", "above the limit"),
        ] {
            let msg = parse_count("--epochs", text, EPOCHS)
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains("--epochs") && msg.contains(needle),
                "{text}: {msg}"
            );
        }
    }
}
