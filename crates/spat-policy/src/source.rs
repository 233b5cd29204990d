//! Where a setting comes from: the thesis (its section and words), the reference code the thesis
//! names or follows (repository, commit, file and lines), both, or spat's own choice (and why).
//! The commits are those the settings were read at.

use std::fmt;

/// A place in a reference repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ref {
    /// `owner/name` on GitHub.
    pub repo: &'static str,
    /// The commit the setting was read at (abbreviated hash).
    pub commit: &'static str,
    /// Path of the file in the repository.
    pub file: &'static str,
    /// Line or lines (`115`, `40-52`).
    pub lines: &'static str,
}

impl Ref {
    /// YisenWang/MART, the code of MART, whose settings §6.1.1 follows.
    pub const fn mart(file: &'static str, lines: &'static str) -> Self {
        Self::at("YisenWang/MART", "2d83e17", file, lines)
    }

    /// yaodongyu/TRADES, the code of TRADES.
    pub const fn trades(file: &'static str, lines: &'static str) -> Self {
        Self::at("yaodongyu/TRADES", "6e8e11b", file, lines)
    }

    /// yaircarmon/semisup-adv, the code of RST (§6.1.2: "exact same settings in RST").
    pub const fn rst(file: &'static str, lines: &'static str) -> Self {
        Self::at("yaircarmon/semisup-adv", "3f05b28", file, lines)
    }

    /// MadryLab/cifar10_challenge, Madry et al.'s code.
    pub const fn madry(file: &'static str, lines: &'static str) -> Self {
        Self::at("MadryLab/cifar10_challenge", "f15682d", file, lines)
    }

    /// locuslab/robust_overfitting, Rice et al.'s code (Madry training as spat runs it).
    pub const fn rice(file: &'static str, lines: &'static str) -> Self {
        Self::at("locuslab/robust_overfitting", "c47a25c", file, lines)
    }

    const fn at(
        repo: &'static str,
        commit: &'static str,
        file: &'static str,
        lines: &'static str,
    ) -> Self {
        Ref {
            repo,
            commit,
            file,
            lines,
        }
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let several = self.lines.contains([',', '-']);
        write!(
            f,
            "{}@{} `{}` line{} {}",
            self.repo,
            self.commit,
            self.file,
            if several { "s" } else { "" },
            self.lines
        )
    }
}

/// Where a setting comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The thesis: its section and, quoted, its words.
    Thesis(&'static str),
    /// The reference code the thesis names (or follows), with what it says there.
    Code(Ref, &'static str),
    /// Both: the thesis states the setting and the code shows it.
    ThesisAndCode(&'static str, Ref),
    /// Neither states it: spat's choice, and why.
    Spat(String),
}

impl Source {
    /// spat's choice, and why.
    pub fn spat(why: impl Into<String>) -> Self {
        Source::Spat(why.into())
    }

    /// True for spat's own choice (neither the thesis nor a reference decides it).
    pub fn is_spat(&self) -> bool {
        matches!(self, Source::Spat(_))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Thesis(s) => write!(f, "thesis {s}"),
            Source::Code(r, what) => write!(f, "{r} ({what})"),
            Source::ThesisAndCode(s, r) => write!(f, "thesis {s}; {r}"),
            Source::Spat(why) => write!(f, "spat's choice: {why}"),
        }
    }
}

/// A setting's value and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    /// The setting's value.
    pub value: T,
    /// Where the value comes from.
    pub source: Source,
}

impl<T> Sourced<T> {
    /// A value with its source.
    pub fn new(value: T, source: Source) -> Self {
        Sourced { value, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_read_as_citations() {
        assert_eq!(
            Ref::mart("train_wideresnet.py", "109-117").to_string(),
            "YisenWang/MART@2d83e17 `train_wideresnet.py` lines 109-117"
        );
        assert_eq!(
            Source::Code(Ref::rst("robust_self_training.py", "93"), "--weight_decay 5e-4")
                .to_string(),
            "yaircarmon/semisup-adv@3f05b28 `robust_self_training.py` line 93 (--weight_decay 5e-4)"
        );
        assert_eq!(Source::spat("why").to_string(), "spat's choice: why");
        assert!(Source::spat("why").is_spat() && !Source::Thesis("§6.1.1").is_spat());
    }
}
