//! RobustBench's CIFAR-10 and CIFAR-100 model zoo (its L∞ and L2 leaderboards), entry by entry:
//! the network each entry builds, under spat's name for it, and the input normalisation its class
//! applies, so that `--model rb:NAME` evaluates the file a user downloaded from RobustBench.
//!
//! The table ([`entries`]) is generated from RobustBench's own `model_zoo/cifar10.py` and
//! `cifar100.py` by `scripts/robustbench_zoo.py`, which builds every entry's network and classifies
//! it; entries whose networks spat cannot build are listed with the reason. Names repeat across
//! leaderboards and data sets (`Rice2020Overfitting` is a WRN-34-20 on CIFAR-10 L∞ and a
//! PreAct-ResNet-18 on CIFAR-10 L2), so a reference may name them: `rb:cifar10/L2/NAME`.

mod entries;

use std::fmt;

use crate::dataset::ChannelStatistics;
use crate::model_name::ModelName;
use crate::{Dataset, Error};

/// RobustBench's leaderboards spat's table covers (its `ThreatModel`, without corruptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leaderboard {
    /// The L∞ leaderboard.
    Linf,
    /// The L2 leaderboard.
    L2,
}

/// One model-zoo entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// The data set the entry was trained for.
    pub dataset: Dataset,
    /// The leaderboard it is listed on.
    pub leaderboard: Leaderboard,
    /// RobustBench's name, e.g. `Wang2023Better_WRN-28-10`.
    pub name: &'static str,
    /// Whether and how spat builds its network.
    pub network: EntryNetwork,
}

/// What an entry's network is to spat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EntryNetwork {
    /// spat builds it.
    Supported {
        /// A [`ModelName`] that builds the same `state_dict` and forward pass.
        architecture: &'static str,
        /// The `(mean, std)` its class normalises the input with (its `mu`/`sigma` buffers, a
        /// DeepMind network's `mean`/`std`, or `2x - 1` as `(0.5, 0.5)`), used when the file
        /// carries none.
        normalization: Option<ChannelStatistics>,
    },
    /// spat does not build it.
    Unsupported {
        /// What the network has that spat does not build.
        reason: &'static str,
    },
}

/// Every CIFAR-10 / CIFAR-100 L∞ and L2 entry of RobustBench's model zoo, in its order.
pub fn entries() -> &'static [Entry] {
    entries::ENTRIES
}

impl Entry {
    /// `cifar10/Linf/NAME`: the entry's fully qualified reference (after `rb:`).
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.dataset.as_str(),
            self.leaderboard.name(),
            self.name
        )
    }

    /// The network spat builds for the entry, or why it builds none.
    pub fn architecture(&self) -> Result<ModelName, Error> {
        match self.network {
            EntryNetwork::Supported { architecture, .. } => architecture.parse(),
            EntryNetwork::Unsupported { reason } => Err(Error::Invalid(format!(
                "RobustBench entry rb:{} needs a network spat does not build: {reason}",
                self.key()
            ))),
        }
    }

    /// The normalisation the entry's class applies to its `[0, 1]` input.
    pub fn normalization(&self) -> Result<Option<ChannelStatistics>, Error> {
        self.architecture()?;
        Ok(match self.network {
            EntryNetwork::Supported { normalization, .. } => normalization,
            EntryNetwork::Unsupported { .. } => None,
        })
    }
}

/// `rb:[DATASET/][LEADERBOARD/]NAME`, as written (the qualifiers pick among entries of one name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryRef {
    /// The data set qualifier, if written (`cifar10/`).
    pub dataset: Option<Dataset>,
    /// The leaderboard qualifier, if written (`Linf/`).
    pub leaderboard: Option<Leaderboard>,
    /// The entry's name.
    pub name: String,
}

impl EntryRef {
    /// Parses the part after `rb:`; the name must be an entry of the table.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut parts: Vec<&str> = s.split('/').collect();
        let name = parts.pop().unwrap_or_default().to_string();
        let mut r = EntryRef {
            dataset: None,
            leaderboard: None,
            name,
        };
        for q in parts {
            match q.to_ascii_lowercase().as_str() {
                "cifar10" if r.dataset.is_none() => r.dataset = Some(Dataset::Cifar10),
                "cifar100" if r.dataset.is_none() => r.dataset = Some(Dataset::Cifar100),
                "linf" if r.leaderboard.is_none() => r.leaderboard = Some(Leaderboard::Linf),
                "l2" if r.leaderboard.is_none() => r.leaderboard = Some(Leaderboard::L2),
                _ => {
                    return Err(format!(
                        "`{q}` is not a RobustBench data set (cifar10, cifar100) or leaderboard \
                         (Linf, L2); write rb:[DATASET/][LEADERBOARD/]NAME"
                    ))
                }
            }
        }
        if r.candidates(None).is_empty() {
            let near: Vec<String> = entries()
                .iter()
                .filter(|e| e.name.eq_ignore_ascii_case(&r.name))
                .map(|e| format!("rb:{}", e.key()))
                .collect();
            return Err(if near.is_empty() {
                "no RobustBench CIFAR-10/100 L∞ or L2 entry has this name (`spat model-info \
                 --list-robustbench` lists them)"
                    .to_string()
            } else {
                format!(
                    "no entry of that name and kind; did you mean {}?",
                    near.join(", ")
                )
            });
        }
        Ok(r)
    }

    /// The entries this reference names, of `dataset` if given.
    pub fn candidates(&self, dataset: Option<Dataset>) -> Vec<&'static Entry> {
        entries()
            .iter()
            .filter(|e| e.name == self.name)
            .filter(|e| self.dataset.is_none_or(|d| d == e.dataset))
            .filter(|e| self.leaderboard.is_none_or(|l| l == e.leaderboard))
            .filter(|e| dataset.is_none_or(|d| d == e.dataset))
            .collect()
    }

    /// The one entry meant: the only candidate, or the first of candidates that all build the
    /// same network with the same normalisation.
    pub fn resolve(&self, dataset: Option<Dataset>) -> Result<&'static Entry, Error> {
        let found = self.candidates(dataset);
        let Some(first) = found.first() else {
            let elsewhere: Vec<String> = self
                .candidates(None)
                .iter()
                .map(|e| format!("rb:{}", e.key()))
                .collect();
            return Err(Error::Invalid(format!(
                "rb:{self} has no {} entry (it names {})",
                dataset.map_or("such".into(), |d| d.to_string()),
                elsewhere.join(", ")
            )));
        };
        if found.iter().all(|e| e.network == first.network) {
            return Ok(first);
        }
        let options: Vec<String> = found
            .iter()
            .map(|e| match e.network {
                EntryNetwork::Supported { architecture, .. } => {
                    format!("rb:{} ({architecture})", e.key())
                }
                EntryNetwork::Unsupported { .. } => format!("rb:{} (not built by spat)", e.key()),
            })
            .collect();
        Err(Error::Invalid(format!(
            "rb:{self} names entries with different networks; name one: {}",
            options.join(", ")
        )))
    }
}

impl fmt::Display for EntryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = self.dataset {
            write!(f, "{d}/")?;
        }
        if let Some(l) = self.leaderboard {
            write!(f, "{}/", l.name())?;
        }
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_ref(s: &str) -> EntryRef {
        match s.parse::<ModelName>() {
            Ok(ModelName::RobustBench(r)) => r,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn every_supported_entry_names_a_network_spat_parses() {
        let all = entries();
        assert_eq!(
            all.len(),
            135,
            "RobustBench 1.1.1: 76 + 21 CIFAR-10, 38 CIFAR-100"
        );
        for e in all {
            if let EntryNetwork::Supported { architecture, .. } = e.network {
                let m: ModelName = architecture.parse().unwrap();
                assert_eq!(m.to_string(), architecture, "{}", e.key());
                assert!(!matches!(m, ModelName::RobustBench(_)));
            }
        }
        let mut keys: Vec<String> = all.iter().map(Entry::key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), all.len(), "keys are unique");
    }

    #[test]
    fn names_resolve_by_data_set_and_leaderboard() {
        let wang = entry_ref("rb:Wang2023Better_WRN-28-10");
        // CIFAR-10 L∞ and L2 build the same network: no need to say which.
        let e = wang.resolve(Some(Dataset::Cifar10)).unwrap();
        assert_eq!(e.architecture().unwrap().to_string(), "dm-wrn-28-10-silu");
        let (mean, _) = e.normalization().unwrap().unwrap();
        assert_eq!(mean, [0.4914, 0.4822, 0.4465]);
        let c100 = wang.resolve(Some(Dataset::Cifar100)).unwrap();
        assert_eq!(
            c100.normalization().unwrap().unwrap().0,
            [0.5071, 0.4865, 0.4409]
        );
        // Different networks under one name must be told apart.
        let rice = entry_ref("rb:Rice2020Overfitting");
        let err = rice
            .resolve(Some(Dataset::Cifar10))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rb:cifar10/Linf/Rice2020Overfitting (wrn-34-20)"),
            "{err}"
        );
        assert!(err.contains("preact-resnet-18-final-bn"), "{err}");
        let l2 = entry_ref("rb:cifar10/l2/Rice2020Overfitting");
        assert_eq!(
            l2.resolve(Some(Dataset::Cifar10))
                .unwrap()
                .architecture()
                .unwrap()
                .to_string(),
            "preact-resnet-18-final-bn"
        );
        let err = entry_ref("rb:Carmon2019Unlabeled")
            .resolve(Some(Dataset::Cifar100))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rb:cifar10/Linf/Carmon2019Unlabeled"), "{err}");
    }

    #[test]
    fn unsupported_entries_say_why() {
        let e = entry_ref("rb:Kang2021Stable").resolve(None).unwrap();
        let err = e.architecture().unwrap_err().to_string();
        assert!(err.contains("SODEF"), "{err}");
        let err = "rb:carmon2019unlabeled"
            .parse::<ModelName>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("did you mean rb:cifar10/Linf/Carmon2019Unlabeled"),
            "{err}"
        );
        let err = "rb:imagenet/Foo"
            .parse::<ModelName>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("`imagenet`"), "{err}");
    }
}
