//! How a network runs ([`Mode`], [`Precision`]) and the model presets with their sizes.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// How a network runs its batch-normalisation layers.
///
/// PyTorch has two (`train()` / `eval()`); adversarial training needs a third, because some
/// methods craft their training adversaries with batch statistics but must not let those
/// adversarial batches move the running statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Batch statistics; running statistics are updated (PyTorch `model.train()`).
    Train,
    /// Batch statistics; running statistics are left untouched.
    TrainFrozenBn,
    /// Running statistics (PyTorch `model.eval()`).
    Eval,
}

impl Mode {
    /// Whether normalisation uses the statistics of the current batch.
    pub fn uses_batch_statistics(self) -> bool {
        !matches!(self, Mode::Eval)
    }

    /// Whether running statistics are updated by a forward pass.
    pub fn updates_running_statistics(self) -> bool {
        matches!(self, Mode::Train)
    }
}

/// Arithmetic of a run (`--precision`, `config.json`'s `precision`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Full f32 everywhere (TF32 off in cuDNN and cuBLAS).
    Fp32,
    /// f32 weights and activations; convolutions and matrix products may use TF32 tensor cores on
    /// CUDA (PyTorch's default for convolutions). On the CPU the same as `Fp32`.
    #[default]
    Tf32,
    /// bf16 convolutions and matrix products with f32 master weights, BN, loss and optimiser.
    Bf16,
}

impl Precision {
    /// Every precision, in the order of [`Precision::NAMES`].
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Tf32, Precision::Bf16];
    /// The names on the command line (`--precision`) and in files.
    pub const NAMES: &'static [&'static str] = &["fp32", "tf32", "bf16"];

    /// The precision's name (`fp32`, `tf32`, `bf16`).
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "bad precision `{s}`: expected one of {}",
                    Self::NAMES.join(", ")
                ))
            })
    }
}

/// Model presets, by the names `spat --model` and `spat_models::build` take.
pub const PRESETS: &[&str] = &[
    "wrn-34-10",
    "wrn-28-10",
    "wrn-16-2",
    "resnet-18",
    "resnet-50",
    "preact-resnet-18",
    "tiny",
];

/// Size and cost of a network (`spat model-info --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelSize {
    /// Trainable scalars, as `sum(p.numel() for p in model.parameters())` in PyTorch.
    pub parameters: usize,
    /// Buffer scalars (running means/variances and `num_batches_tracked`).
    pub buffers: usize,
    /// Floating-point operations of one forward pass on one 3×32×32 image, counted as
    /// 2 × the multiply-accumulates of convolutions and linear layers (BN, ReLU, pooling excluded).
    pub flops: u64,
}

/// Sizes of the presets with 10 classes, as `spat model-info PRESET --json` prints them. A test of
/// spat-models checks every entry against the construction code; the parameter counts of the
/// paper's networks are PyTorch's (WRN-34-10 46,160,474, ResNet-18 11,173,962, ...).
pub const MODEL_SIZES: &[(&str, ModelSize)] = &[
    ("wrn-34-10", size(46_160_474, 22_463, 13_317_812_736)),
    ("wrn-28-10", size(36_479_194, 17_977, 10_486_657_536)),
    ("wrn-16-2", size(691_674, 1_837, 202_213_888)),
    ("resnet-18", size(11_173_962, 9_620, 1_110_845_440)),
    ("resnet-50", size(23_520_842, 53_173, 2_595_659_776)),
    ("preact-resnet-18", size(11_171_146, 6_800, 1_110_845_440)),
    ("tiny", size(19_858, 247, 6_472_320)),
];

const fn size(parameters: usize, buffers: usize, flops: u64) -> ModelSize {
    ModelSize {
        parameters,
        buffers,
        flops,
    }
}

/// The size of `preset` with 10 classes; `None` for an unknown preset.
pub fn model_size(preset: &str) -> Option<ModelSize> {
    MODEL_SIZES
        .iter()
        .find(|(name, _)| *name == preset)
        .map(|(_, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_has_a_size_and_precisions_round_trip() {
        let sized: Vec<&str> = MODEL_SIZES.iter().map(|(n, _)| *n).collect();
        assert_eq!(sized, PRESETS);
        assert!(model_size("wrn-99").is_none());
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        let e = "fp16".parse::<Precision>().unwrap_err().to_string();
        assert!(e.contains("fp16") && e.contains("bf16"), "{e}");
    }
}
