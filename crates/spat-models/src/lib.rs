//! The classifiers of the SPAT paper, by preset name, with PyTorch-exact layouts and weight names.
//!
//! ```no_run
//! use candle_core::{Device, Tensor};
//! use spat_core::{Classifier, Mode, Network};
//! let model = spat_models::build("resnet-18", 10, &Device::Cpu, 0)?;
//! let x = Tensor::zeros((2, 3, 32, 32), candle_core::DType::F32, &Device::Cpu)?;
//! let logits = model.logits(&x, Mode::Eval)?; // (2, 10)
//! model.var_store().save(std::path::Path::new("resnet18.safetensors"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod layers;
pub mod resnet;
pub mod wide_resnet;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use spat_core::{Classifier, Mode, Network, VarKind, VarStore};

pub use layers::Declared;
/// The kernel profile (`spat bench --profile`) and the process-wide TF32 switch live with the
/// kernels; re-exported so that a user of this crate needs no other.
pub use spat_kernels::{profile, set_tf32, tf32_enabled};

/// Arithmetic of a network's convolutions and classifier head.
///
/// Parameters, batch-norm statistics, the loss and the optimiser stay in `f32` in every case;
/// `Bf16` is mixed precision in the sense of PyTorch's `autocast(dtype=torch.bfloat16)`: the
/// `f32` master weights are cast to `bf16` for each matrix product and convolution, batch
/// normalisation runs in `f32`, and the logits come back as `f32`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Convolutions and matrix products in `f32` (TF32 on a GPU when the TF32 switch is on).
    #[default]
    F32,
    /// Convolutions and matrix products in `bf16`, on `f32` master weights.
    Bf16,
}

impl Precision {
    /// Dtype of convolutions and matrix products.
    pub fn compute_dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }
}

/// Puts a run's arithmetic into effect: sets the process-wide TF32 switch (off for `fp32` only)
/// and returns the [`Precision`] its models compute in.
pub fn use_precision(p: spat_spec::Precision) -> Precision {
    set_tf32(p != spat_spec::Precision::Fp32);
    match p {
        spat_spec::Precision::Bf16 => Precision::Bf16,
        spat_spec::Precision::Fp32 | spat_spec::Precision::Tf32 => Precision::F32,
    }
}
pub use resnet::{BlockKind, ResNet, ResNetConfig};
pub use wide_resnet::{WideResNet, WideResNetConfig};

/// Errors of spat-models.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Loading weights or a variable store failed.
    #[error(transparent)]
    Core(#[from] spat_core::Error),
    /// A model name that is none of [`PRESETS`].
    #[error("unknown model preset `{0}`; available: {list}", list = PRESETS.join(", "))]
    UnknownPreset(String),
    /// An architecture that cannot be built (zero classes or depth, a WideResNet depth not `6n + 4`, ...).
    #[error("{0}")]
    Config(String),
    /// Weights that do not fit the network, with the presets they do fit.
    #[error("{mismatch}; {fits}")]
    Mismatch {
        /// The names and shapes that did not match.
        mismatch: Box<spat_core::Mismatch>,
        /// The presets whose variables the file does fit, if any.
        fits: String,
    },
}

/// `Result` with spat-models' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Preset names accepted by [`build`] (spat-spec's list; [`spat_spec::MODEL_SIZES`] has their sizes).
pub use spat_spec::{ModelSize, PRESETS};

/// An architecture with its hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Architecture {
    /// A WideResNet of the TRADES/MART layout.
    WideResNet(WideResNetConfig),
    /// A CIFAR-form ResNet or PreAct-ResNet.
    ResNet(ResNetConfig),
}

impl Architecture {
    /// The architecture of a preset for `num_classes` outputs.
    pub fn preset(name: &str, num_classes: usize) -> Result<Self> {
        let wrn = |depth, widen, base| Architecture::wide_resnet(depth, widen, base, num_classes);
        let resnet = |block, layers| Architecture::resnet(block, layers, 64, num_classes);
        Ok(match name {
            "wrn-34-10" => wrn(34, 10, 16),
            "wrn-28-10" => wrn(28, 10, 16),
            "wrn-16-2" => wrn(16, 2, 16),
            // WRN-10-1 at half the stem width: ~20k parameters, enough to learn CIFAR-10 above chance
            // in seconds on a CPU, which keeps smoke reproductions and tests short.
            "tiny" => wrn(10, 1, 8),
            "resnet-18" => resnet(BlockKind::Basic, [2, 2, 2, 2]),
            "resnet-50" => resnet(BlockKind::Bottleneck, [3, 4, 6, 3]),
            "preact-resnet-18" => resnet(BlockKind::PreAct, [2, 2, 2, 2]),
            other => return Err(Error::UnknownPreset(other.to_string())),
        })
    }
}

#[derive(Debug)]
enum Net {
    WideResNet(Box<WideResNet>),
    ResNet(Box<ResNet>),
}

/// A classifier and the store holding its weights.
#[derive(Debug)]
pub struct Model {
    net: Net,
    store: VarStore,
    num_classes: usize,
    precision: Precision,
}

/// Constructs `arch` with `b`, returning the network and its class count.
fn construct(b: &mut layers::Builder<'_>, arch: &Architecture) -> Result<(Net, usize)> {
    arch.validate()?;
    Ok(match arch {
        Architecture::WideResNet(c) => (
            Net::WideResNet(Box::new(WideResNet::new(b, c)?)),
            c.num_classes,
        ),
        Architecture::ResNet(c) => (Net::ResNet(Box::new(ResNet::new(b, c)?)), c.num_classes),
    })
}

impl Net {
    fn macs(&self, h: usize, w: usize) -> u64 {
        match self {
            Net::WideResNet(n) => n.macs((h, w)),
            Net::ResNet(n) => n.macs((h, w)),
        }
    }
}

impl Architecture {
    /// WideResNet-`depth`-`widen` with stem width `base` (16 in the paper; smaller for tests).
    pub fn wide_resnet(depth: usize, widen: usize, base: usize, num_classes: usize) -> Self {
        Architecture::WideResNet(WideResNetConfig {
            depth,
            widen,
            base,
            num_classes,
        })
    }

    /// ResNet-18 whose first stage has `base` channels (64 = the real ResNet-18).
    pub fn resnet18_width(base: usize, num_classes: usize) -> Self {
        Self::resnet(BlockKind::Basic, [2, 2, 2, 2], base, num_classes)
    }

    /// ResNet-50 whose first stage has `base` bottleneck planes (64 = the real ResNet-50).
    pub fn resnet50_width(base: usize, num_classes: usize) -> Self {
        Self::resnet(BlockKind::Bottleneck, [3, 4, 6, 3], base, num_classes)
    }

    /// PreAct-ResNet-18 whose first stage has `base` channels (64 = the real one).
    pub fn preact_resnet18_width(base: usize, num_classes: usize) -> Self {
        Self::resnet(BlockKind::PreAct, [2, 2, 2, 2], base, num_classes)
    }

    fn resnet(block: BlockKind, layers: [usize; 4], base: usize, num_classes: usize) -> Self {
        Architecture::ResNet(ResNetConfig {
            block,
            layers,
            base,
            num_classes,
        })
    }

    /// Rejects sizes no network can have (zero classes, widths or stages) and class counts
    /// beyond [`spat_spec::limits::CLASSES`] (whose layer sizes would overflow).
    pub fn validate(&self) -> Result<()> {
        let problem = match self {
            Architecture::WideResNet(c) if c.num_classes == 0 => Some("num_classes must be >= 1"),
            Architecture::WideResNet(c) if c.base == 0 || c.widen == 0 => {
                Some("WideResNet base width and widen factor must be >= 1")
            }
            Architecture::ResNet(c) if c.num_classes == 0 => Some("num_classes must be >= 1"),
            Architecture::ResNet(c) if c.base == 0 => Some("ResNet base width must be >= 1"),
            Architecture::ResNet(c) if c.layers.contains(&0) => {
                Some("every ResNet stage needs at least one block")
            }
            _ => None,
        };
        if let Some(p) = problem {
            return Err(Error::Config(format!("{p} (got {self:?})")));
        }
        let classes = match self {
            Architecture::WideResNet(c) => c.num_classes,
            Architecture::ResNet(c) => c.num_classes,
        };
        spat_spec::limits::check_count("num_classes", classes, spat_spec::limits::CLASSES)
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(())
    }

    /// Every variable the network declares (its `state_dict` keys, shapes and kinds, in
    /// registration order), found without drawing any weight.
    pub fn variables(&self) -> Result<Vec<layers::Declared>> {
        Ok(self.dry_build()?.1)
    }

    /// Parameter and buffer counts and the FLOPs of one 3×32×32 forward, counted from the
    /// construction code without drawing any weight (cheap even for WRN-34-10).
    pub fn info(&self) -> Result<ModelSize> {
        let (net, declared) = self.dry_build()?;
        let count = |kind| {
            declared
                .iter()
                .filter(|d| d.kind == kind)
                .map(|d| d.shape.iter().product::<usize>())
                .sum()
        };
        Ok(ModelSize {
            parameters: count(VarKind::Parameter),
            buffers: count(VarKind::Buffer),
            flops: 2 * net.macs(32, 32),
        })
    }

    fn dry_build(&self) -> Result<(Net, Vec<layers::Declared>)> {
        let mut store = VarStore::new(&Device::Cpu);
        let mut rng = spat_core::rng::host_rng(0, spat_core::rng::streams::INIT);
        let mut b = layers::Builder::new(&mut store, &mut rng, true);
        let (net, _) = construct(&mut b, self)?;
        Ok((net, b.declared))
    }
}

impl Model {
    /// Builds `arch` with weights initialised as the reference does, from `host_rng(seed, INIT)`.
    pub fn new(arch: &Architecture, device: &Device, seed: u64) -> Result<Self> {
        let mut store = VarStore::new(device);
        let mut rng = spat_core::rng::host_rng(seed, spat_core::rng::streams::INIT);
        let mut b = layers::Builder::new(&mut store, &mut rng, false);
        let (net, num_classes) = construct(&mut b, arch)?;
        Ok(Self {
            net,
            store,
            num_classes,
            precision: Precision::F32,
        })
    }

    /// The same model computing in `precision` (see [`Precision`]); weights are untouched.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// The arithmetic the model computes in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    fn forward(&self, x: &Tensor, pass: layers::Pass) -> candle_core::Result<Tensor> {
        layers::check_dims(x)?;
        let x = x.to_dtype(pass.compute)?;
        let logits = match &self.net {
            Net::WideResNet(n) => n.forward(&x, pass)?,
            Net::ResNet(n) => n.forward(&x, pass)?,
        };
        logits.to_dtype(DType::F32)
    }

    /// Multiply-accumulate operations of one forward pass on a `3 × h × w` image.
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        self.net.macs(h, w)
    }
}

impl Classifier for Model {
    fn logits(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        self.forward(x, layers::Pass::new(mode, self.precision, false))
    }

    fn logits_wrt_input(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        self.forward(x, layers::Pass::new(mode, self.precision, true))
    }
}

impl Network for Model {
    fn var_store(&self) -> &VarStore {
        &self.store
    }
    fn num_classes(&self) -> usize {
        self.num_classes
    }
}

/// Builds a preset (see [`PRESETS`]) on `device`, initialised from `seed`.
pub fn build(
    preset: &str,
    num_classes: usize,
    device: &Device,
    seed: u64,
) -> Result<Box<dyn Network>> {
    build_with_precision(preset, num_classes, device, seed, Precision::F32)
}

/// [`build`], computing in `precision`.
pub fn build_with_precision(
    preset: &str,
    num_classes: usize,
    device: &Device,
    seed: u64,
    precision: Precision,
) -> Result<Box<dyn Network>> {
    Ok(Box::new(
        Model::new(&Architecture::preset(preset, num_classes)?, device, seed)?
            .with_precision(precision),
    ))
}

/// Size and cost of a preset, counted without drawing its weights (see [`Architecture::info`]).
pub fn model_info(preset: &str, num_classes: usize) -> Result<ModelSize> {
    Architecture::preset(preset, num_classes)?.info()
}

/// Loads any weights file into `model`: spat's safetensors, or a PyTorch checkpoint (zip,
/// legacy or tar `torch.save`, bare or wrapped state dict), names fitted and every weight
/// checked as [`VarStore::load_checkpoint`] does. When the file does not fit the network, the
/// error is one line: counts and a few names of the differences, and the presets (with class
/// count) whose layout does fit.
pub fn load_weights(model: &dyn Network, path: &Path) -> Result<spat_core::LoadReport> {
    match model.var_store().load_checkpoint(path) {
        Err(spat_core::Error::Mismatch(m)) => {
            let fits = presets_fitting(&m.file_shapes);
            Err(Error::Mismatch {
                fits: if fits.is_empty() {
                    "no preset's layout fits".into()
                } else {
                    format!("presets whose layout fits: {}", fits.join(", "))
                },
                mismatch: m,
            })
        }
        other => Ok(other?),
    }
}

/// Presets (`name` or `name (K classes)`) that declare exactly these names and shapes. Class
/// counts tried: those of 1-D `fc.bias` / `linear.bias` tensors in the file.
pub fn presets_fitting(file_shapes: &[(String, Vec<usize>)]) -> Vec<String> {
    let mut classes: Vec<usize> = file_shapes
        .iter()
        .filter(|(n, s)| (n == "fc.bias" || n == "linear.bias") && s.len() == 1)
        .map(|(_, s)| s[0])
        .filter(|&k| k > 0)
        .collect();
    classes.dedup();
    let mut want: Vec<(&str, &[usize])> = file_shapes
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    want.sort();
    let mut out = Vec::new();
    for &k in &classes {
        for &preset in PRESETS {
            let Ok(vars) = Architecture::preset(preset, k).and_then(|a| a.variables()) else {
                continue;
            };
            let mut have: Vec<(&str, &[usize])> = vars
                .iter()
                .map(|d| (d.name.as_str(), d.shape.as_slice()))
                .collect();
            have.sort();
            if have == want {
                out.push(format!("{preset} ({k} classes)"));
            }
        }
    }
    out
}

// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
