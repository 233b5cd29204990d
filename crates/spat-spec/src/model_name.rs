//! Networks by name (`--model`): a grammar for every architecture spat builds, at any depth and
//! width, and RobustBench's entry names as aliases.
//!
//! | name | network |
//! | --- | --- |
//! | `wrn-D-W` | WideResNet-D-W in the TRADES/MART layout (`conv1`, `blockG.layer.I.{bn1, conv1, bn2, conv2, convShortcut}`, `bn1`, `fc`) |
//! | `dm-wrn-D-W[-relu\|-silu\|-swish]` | DeepMind's WideResNet (RobustBench `dm_wide_resnet.py`), ReLU unless named |
//! | `dm-preact-resnet-18\|34[-relu\|-silu\|-swish]` | DeepMind's PreAct-ResNet (same file) |
//! | `resnet-18`, `resnet-50` | kuangliu's CIFAR ResNets |
//! | `preact-resnet-18[-input-shortcut][-final-bn]` | kuangliu's PreAct-ResNet-18; `-input-shortcut`: the strided shortcut reads the block's input instead of its activation (Wong et al. 2020, Andriushchenko et al. 2020, RobustBench's `PreActBlock`); `-final-bn`: BN–ReLU before pooling (Rice et al. 2020) |
//! | `tiny` | WRN-10-1 with an 8-channel stem (tests and smoke runs) |
//! | `rb:[DATASET/][LEADERBOARD/]NAME` | a RobustBench model-zoo entry ([`crate::robustbench`]) |
//!
//! D is `6n + 4` for the WideResNets. SiLU and Swish are the same function, `x·sigmoid(x)`
//! (RobustBench builds the older entries with a custom `Swish` and the newer with `nn.SiLU`);
//! `-swish` reads as `-silu`. The DeepMind networks normalise their input inside the model
//! ([`ModelName::input_normalization`]).

use std::fmt;
use std::str::FromStr;

use crate::dataset::ChannelStatistics;
use crate::robustbench::{self, Leaderboard};
use crate::{Dataset, Error};

/// The non-linearity between layers of the DeepMind networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `x·sigmoid(x)`, also called Swish.
    Silu,
}

impl Activation {
    /// The name in model names (`relu`, `silu`).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Silu => "silu",
        }
    }
}

/// Which tensor the strided 1×1 shortcut of a pre-activation block reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PreActShortcut {
    /// `relu(bn1(x))`, as kuangliu's `preact_resnet.py`.
    Activated,
    /// The block's input `x`, as fast_adversarial's and RobustBench's `PreActBlock`.
    Input,
}

/// A network by name; [`fmt::Display`] writes the canonical name, which parses back to the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelName {
    /// WRN-10-1 with an 8-channel stem.
    Tiny,
    /// TRADES/MART WideResNet-`depth`-`width`.
    Wrn {
        /// Depth `6n + 4`.
        depth: usize,
        /// Widening factor.
        width: usize,
    },
    /// DeepMind-layout WideResNet.
    DmWrn {
        /// Depth `6n + 4`.
        depth: usize,
        /// Widening factor.
        width: usize,
        /// The non-linearity.
        activation: Activation,
    },
    /// DeepMind-layout PreAct-ResNet, depth 18 or 34.
    DmPreActResNet {
        /// 18 or 34.
        depth: usize,
        /// The non-linearity.
        activation: Activation,
    },
    /// kuangliu's ResNet-18 or ResNet-50.
    ResNet {
        /// 18 or 50.
        depth: usize,
    },
    /// PreAct-ResNet-18 with its shortcut and its head as named.
    PreActResNet18 {
        /// Which tensor the strided shortcut reads.
        shortcut: PreActShortcut,
        /// A BN–ReLU before pooling (Rice et al. 2020, RobustBench's `PreActBlockV2`).
        final_bn: bool,
    },
    /// A RobustBench model-zoo entry.
    RobustBench(robustbench::EntryRef),
}

/// The forms `--model` takes, for help texts and errors.
pub const MODEL_FORMS: &str = "wrn-D-W, dm-wrn-D-W[-relu|-silu|-swish], \
    dm-preact-resnet-18|34[-relu|-silu|-swish], resnet-18, resnet-50, \
    preact-resnet-18[-input-shortcut][-final-bn], tiny, rb:NAME (a RobustBench entry)";

/// The largest depth and width the grammar accepts: far beyond any published network, small
/// enough that no size computed from them overflows.
const MAX_DEPTH: usize = 1000;
const MAX_WIDTH: usize = 1000;

impl ModelName {
    /// The architecture a name builds: itself, or a RobustBench entry's (for `dataset` if given,
    /// which picks among entries of the same name).
    pub fn architecture(&self, dataset: Option<Dataset>) -> Result<ModelName, Error> {
        match self {
            ModelName::RobustBench(r) => r.resolve(dataset)?.architecture(),
            other => Ok(other.clone()),
        }
    }

    /// The `(mean, std)` the network subtracts from and divides its `[0, 1]` input by, inside the
    /// model, when its checkpoint does not carry its own: the DeepMind networks use the data
    /// set's statistics (RobustBench's `CIFAR100_MEAN`/`STD` for CIFAR-100, its default
    /// `CIFAR10_MEAN`/`STD` otherwise); a RobustBench entry uses what its class registers or
    /// computes. `None`: the network takes pixels as they are.
    pub fn input_normalization(
        &self,
        dataset: Dataset,
    ) -> Result<Option<ChannelStatistics>, Error> {
        Ok(match self {
            ModelName::DmWrn { .. } | ModelName::DmPreActResNet { .. } => {
                Some(dataset.channel_statistics())
            }
            ModelName::RobustBench(r) => r.resolve(Some(dataset))?.normalization()?,
            _ => None,
        })
    }

    fn parse_name(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("rb:") {
            return robustbench::EntryRef::parse(rest).map(ModelName::RobustBench);
        }
        match s {
            "tiny" => return Ok(ModelName::Tiny),
            "resnet-18" => return Ok(ModelName::ResNet { depth: 18 }),
            "resnet-50" => return Ok(ModelName::ResNet { depth: 50 }),
            _ => {}
        }
        if let Some(rest) = s.strip_prefix("preact-resnet-18") {
            let (shortcut, rest) = match rest.strip_prefix("-input-shortcut") {
                Some(r) => (PreActShortcut::Input, r),
                None => (PreActShortcut::Activated, rest),
            };
            let final_bn = match rest {
                "" => false,
                "-final-bn" => true,
                _ => return Err("expected preact-resnet-18[-input-shortcut][-final-bn]".into()),
            };
            return Ok(ModelName::PreActResNet18 { shortcut, final_bn });
        }
        if let Some(rest) = s.strip_prefix("dm-preact-resnet-") {
            let (depth, activation) = split_activation(rest)?;
            let depth = match depth {
                "18" => 18,
                "34" => 34,
                _ => {
                    return Err(format!(
                        "DeepMind PreAct-ResNets have depth 18 or 34, not `{depth}`"
                    ))
                }
            };
            return Ok(ModelName::DmPreActResNet { depth, activation });
        }
        if let Some(rest) = s.strip_prefix("dm-wrn-") {
            let (size, activation) = split_activation(rest)?;
            let (depth, width) = wrn_size(size)?;
            return Ok(ModelName::DmWrn {
                depth,
                width,
                activation,
            });
        }
        if let Some(rest) = s.strip_prefix("wrn-") {
            let (depth, width) = wrn_size(rest)?;
            return Ok(ModelName::Wrn { depth, width });
        }
        Err(format!("expected one of {MODEL_FORMS}"))
    }
}

/// `D-W[-act]` → (`D-W`, activation); ReLU when none is named.
fn split_activation(s: &str) -> Result<(&str, Activation), String> {
    for (suffix, act) in [
        ("-relu", Activation::Relu),
        ("-silu", Activation::Silu),
        ("-swish", Activation::Silu),
    ] {
        if let Some(rest) = s.strip_suffix(suffix) {
            return Ok((rest, act));
        }
    }
    match s.rsplit_once('-') {
        Some((_, last)) if last.parse::<usize>().is_err() => Err(format!(
            "unknown activation `{last}`: expected relu, silu or swish"
        )),
        _ => Ok((s, Activation::Relu)),
    }
}

/// `D-W` of a WideResNet: D = 6n + 4 with n ≥ 1, W ≥ 1.
fn wrn_size(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("expected DEPTH-WIDTH such as 28-10, got `{s}`");
    let (d, w) = s.split_once('-').ok_or_else(bad)?;
    let depth: usize = d.parse().map_err(|_| bad())?;
    let width: usize = w.parse().map_err(|_| bad())?;
    if depth < 10 || !(depth - 4).is_multiple_of(6) || depth > MAX_DEPTH {
        return Err(format!(
            "a WideResNet's depth is 6n + 4 (10, 16, 22, 28, 34, ...) up to {MAX_DEPTH}, not {depth}"
        ));
    }
    if width == 0 || width > MAX_WIDTH {
        return Err(format!(
            "a WideResNet's width is 1 to {MAX_WIDTH}, not {width}"
        ));
    }
    Ok((depth, width))
}

impl FromStr for ModelName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim();
        Self::parse_name(t).map_err(|why| Error::Invalid(format!("bad model `{t}`: {why}")))
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelName::Tiny => f.write_str("tiny"),
            ModelName::Wrn { depth, width } => write!(f, "wrn-{depth}-{width}"),
            ModelName::DmWrn {
                depth,
                width,
                activation,
            } => write!(f, "dm-wrn-{depth}-{width}-{}", activation.name()),
            ModelName::DmPreActResNet { depth, activation } => {
                write!(f, "dm-preact-resnet-{depth}-{}", activation.name())
            }
            ModelName::ResNet { depth } => write!(f, "resnet-{depth}"),
            ModelName::PreActResNet18 { shortcut, final_bn } => {
                f.write_str("preact-resnet-18")?;
                if *shortcut == PreActShortcut::Input {
                    f.write_str("-input-shortcut")?;
                }
                if *final_bn {
                    f.write_str("-final-bn")?;
                }
                Ok(())
            }
            ModelName::RobustBench(r) => write!(f, "rb:{r}"),
        }
    }
}

impl Leaderboard {
    /// The leaderboard's name (`Linf`, `L2`), as RobustBench writes it.
    pub fn name(self) -> &'static str {
        match self {
            Leaderboard::Linf => "Linf",
            Leaderboard::L2 => "L2",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ModelName {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn names_parse_to_their_networks_and_print_canonically() {
        let cases = [
            ("wrn-34-15", "wrn-34-15"),
            ("wrn-70-16", "wrn-70-16"),
            ("dm-wrn-70-16-swish", "dm-wrn-70-16-silu"),
            ("dm-wrn-28-10", "dm-wrn-28-10-relu"),
            ("dm-wrn-16-2-silu", "dm-wrn-16-2-silu"),
            ("dm-preact-resnet-18-silu", "dm-preact-resnet-18-silu"),
            ("dm-preact-resnet-34", "dm-preact-resnet-34-relu"),
            ("preact-resnet-18", "preact-resnet-18"),
            (
                "preact-resnet-18-input-shortcut-final-bn",
                "preact-resnet-18-input-shortcut-final-bn",
            ),
            ("resnet-50", "resnet-50"),
            (" tiny ", "tiny"),
        ];
        for (name, canonical) in cases {
            let m = parse(name);
            assert_eq!(m.to_string(), canonical, "{name}");
            assert_eq!(parse(canonical), m);
        }
        assert_eq!(
            parse("dm-wrn-70-16-swish"),
            ModelName::DmWrn {
                depth: 70,
                width: 16,
                activation: Activation::Silu
            }
        );
        for preset in crate::PRESETS {
            assert_eq!(parse(preset).to_string(), *preset);
        }
    }

    #[test]
    fn bad_names_are_one_line_errors_saying_why() {
        for (bad, why) in [
            ("vgg-16", "expected one of"),
            ("wrn-33-10", "6n + 4"),
            ("wrn-28-0", "width is 1"),
            ("wrn-28", "DEPTH-WIDTH"),
            ("dm-wrn-28-10-gelu", "unknown activation `gelu`"),
            ("dm-preact-resnet-50", "18 or 34"),
            ("preact-resnet-18-bn", "input-shortcut"),
            ("wrn-99999999999999999999999-1", "DEPTH-WIDTH"),
            ("wrn-100006-1", "up to 1000"),
            ("rb:NoSuchEntry2099", "no RobustBench"),
        ] {
            let e = bad.parse::<ModelName>().unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains(why), "{bad}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn deepmind_networks_normalise_with_the_data_sets_statistics() {
        let dm = parse("dm-wrn-28-10-silu");
        let (mean, std) = dm.input_normalization(Dataset::Cifar100).unwrap().unwrap();
        assert_eq!(mean, [0.5071, 0.4865, 0.4409]);
        assert_eq!(std, [0.2673, 0.2564, 0.2762]);
        let (mean, _) = dm.input_normalization(Dataset::Cifar10).unwrap().unwrap();
        assert_eq!(mean, [0.4914, 0.4822, 0.4465]);
        assert_eq!(
            parse("wrn-28-10")
                .input_normalization(Dataset::Cifar10)
                .unwrap(),
            None
        );
    }
}
