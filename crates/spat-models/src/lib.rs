//! The classifiers of the SPAT paper and of RobustBench's leaderboards, by name (any
//! [`spat_spec::ModelName`]: `wrn-34-20`, `dm-wrn-70-16-silu`, `rb:Wang2023Better_WRN-28-10`, ...),
//! with PyTorch-exact layouts and weight names.
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

pub mod deepmind;
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
pub use deepmind::{DmNetwork, DmPreActResNetConfig, DmWideResNetConfig};
pub use resnet::{BlockKind, ResNet, ResNetConfig};
use spat_spec::{Dataset, ModelName, PreActShortcut};
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
    /// A model name outside the grammar, or a RobustBench entry spat does not build.
    #[error(transparent)]
    Name(#[from] spat_spec::Error),
    /// An architecture that cannot be built (zero classes or depth, a WideResNet depth not `6n + 4`, ...).
    #[error("{0}")]
    Config(String),
    /// Weights that do not fit the network, with the architectures they do fit.
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
    /// DeepMind's WideResNet (RobustBench's `DMWideResNet`).
    DmWideResNet(DmWideResNetConfig),
    /// DeepMind's PreAct-ResNet (RobustBench's `DMPreActResNet`).
    DmPreActResNet(DmPreActResNetConfig),
}

impl Architecture {
    /// The architecture a model name (see [`spat_spec::ModelName`]) builds for `num_classes`
    /// outputs; a RobustBench entry's name for `dataset` if given.
    pub fn preset(name: &str, num_classes: usize) -> Result<Self> {
        Self::from_name(&name.parse()?, None, num_classes)
    }

    /// [`Architecture::preset`] of a parsed name.
    pub fn from_name(
        name: &ModelName,
        dataset: Option<Dataset>,
        num_classes: usize,
    ) -> Result<Self> {
        let resnet = |block, layers| Architecture::resnet(block, layers, 64, num_classes);
        Ok(match name.architecture(dataset)? {
            // WRN-10-1 at half the stem width: ~20k parameters, enough to learn CIFAR-10 above chance
            // in seconds on a CPU, which keeps smoke reproductions and tests short.
            ModelName::Tiny => Architecture::wide_resnet(10, 1, 8, num_classes),
            ModelName::Wrn { depth, width } => {
                Architecture::wide_resnet(depth, width, 16, num_classes)
            }
            ModelName::DmWrn {
                depth,
                width,
                activation,
            } => Architecture::DmWideResNet(DmWideResNetConfig {
                depth,
                width,
                base: 16,
                activation,
                num_classes,
            }),
            ModelName::DmPreActResNet { depth, activation } => {
                Architecture::DmPreActResNet(DmPreActResNetConfig {
                    depth,
                    base: 64,
                    activation,
                    num_classes,
                })
            }
            ModelName::ResNet { depth: 18 } => resnet(BlockKind::Basic, [2, 2, 2, 2]),
            ModelName::ResNet { .. } => resnet(BlockKind::Bottleneck, [3, 4, 6, 3]),
            ModelName::PreActResNet18 { shortcut, final_bn } => {
                let block = match shortcut {
                    PreActShortcut::Activated => BlockKind::PreAct,
                    PreActShortcut::Input => BlockKind::PreActInputShortcut,
                };
                Architecture::ResNet(ResNetConfig {
                    block,
                    layers: [2, 2, 2, 2],
                    base: 64,
                    num_classes,
                    final_bn,
                })
            }
            ModelName::RobustBench(_) => unreachable!("architecture() resolves entries"),
        })
    }
}

#[derive(Debug)]
#[allow(clippy::enum_variant_names)] // each variant is named after the network type it holds
enum Net {
    WideResNet(Box<WideResNet>),
    ResNet(Box<ResNet>),
    Dm(Box<DmNetwork>),
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
        Architecture::DmWideResNet(c) => (
            Net::Dm(Box::new(DmNetwork::wide_resnet(b, c)?)),
            c.num_classes,
        ),
        Architecture::DmPreActResNet(c) => (
            Net::Dm(Box::new(DmNetwork::preact_resnet(b, c)?)),
            c.num_classes,
        ),
    })
}

impl Net {
    fn macs(&self, h: usize, w: usize) -> u64 {
        match self {
            Net::WideResNet(n) => n.macs((h, w)),
            Net::ResNet(n) => n.macs((h, w)),
            Net::Dm(n) => n.macs((h, w)),
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
            final_bn: false,
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
            Architecture::DmWideResNet(c) if c.num_classes == 0 => Some("num_classes must be >= 1"),
            Architecture::DmWideResNet(c) if c.base == 0 || c.width == 0 => {
                Some("WideResNet base width and width factor must be >= 1")
            }
            Architecture::DmPreActResNet(c) if c.num_classes == 0 => {
                Some("num_classes must be >= 1")
            }
            Architecture::DmPreActResNet(c) if c.base == 0 => {
                Some("PreAct-ResNet base width must be >= 1")
            }
            _ => None,
        };
        if let Some(p) = problem {
            return Err(Error::Config(format!("{p} (got {self:?})")));
        }
        let classes = match self {
            Architecture::WideResNet(c) => c.num_classes,
            Architecture::ResNet(c) => c.num_classes,
            Architecture::DmWideResNet(c) => c.num_classes,
            Architecture::DmPreActResNet(c) => c.num_classes,
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
            Net::Dm(n) => n.forward(&x, pass)?,
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

/// Builds the network `name` names (a preset, any [`ModelName`]) on `device`, initialised from
/// `seed`.
pub fn build(
    name: &str,
    num_classes: usize,
    device: &Device,
    seed: u64,
) -> Result<Box<dyn Network>> {
    build_with_precision(name, num_classes, device, seed, Precision::F32)
}

/// [`build`], computing in `precision`.
pub fn build_with_precision(
    name: &str,
    num_classes: usize,
    device: &Device,
    seed: u64,
    precision: Precision,
) -> Result<Box<dyn Network>> {
    build_named(&name.parse()?, None, num_classes, device, seed, precision)
}

/// [`build_with_precision`] of a parsed name; a RobustBench entry's for `dataset` if given. The
/// network takes what its first layer takes: for a name with an
/// [`input normalisation`](ModelName::input_normalization), wrap it in [`spat_core::Normalized`].
pub fn build_named(
    name: &ModelName,
    dataset: Option<Dataset>,
    num_classes: usize,
    device: &Device,
    seed: u64,
    precision: Precision,
) -> Result<Box<dyn Network>> {
    let arch = Architecture::from_name(name, dataset, num_classes)?;
    Ok(Box::new(
        Model::new(&arch, device, seed)?.with_precision(precision),
    ))
}

/// Size and cost of a named network, counted without drawing its weights (see
/// [`Architecture::info`]).
pub fn model_info(name: &str, num_classes: usize) -> Result<ModelSize> {
    Architecture::preset(name, num_classes)?.info()
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
                    "no architecture's layout fits".into()
                } else {
                    format!("architectures whose layout fits: {}", fits.join(", "))
                },
                mismatch: m,
            })
        }
        other => Ok(other?),
    }
}

/// Names (`name (K classes)`) whose networks declare exactly these names and shapes. Tried: the
/// presets, the PreAct-ResNet-18 variants, and the WideResNets whose depth and width the file's
/// own shapes give, with each activation (a file does not say which activation or which
/// shortcut input its network used); class counts: those of the file's 1-D `fc.bias`,
/// `linear.bias` or `logits.bias`.
pub fn presets_fitting(file_shapes: &[(String, Vec<usize>)]) -> Vec<String> {
    let mut classes: Vec<usize> = file_shapes
        .iter()
        .filter(|(n, s)| {
            ["fc.bias", "linear.bias", "logits.bias"].contains(&n.as_str()) && s.len() == 1
        })
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
        for name in candidate_names(file_shapes) {
            let Ok(vars) = Architecture::preset(&name, k).and_then(|a| a.variables()) else {
                continue;
            };
            let mut have: Vec<(&str, &[usize])> = vars
                .iter()
                .map(|d| (d.name.as_str(), d.shape.as_slice()))
                .collect();
            have.sort();
            if have == want {
                out.push(format!("{name} ({k} classes)"));
            }
        }
    }
    out
}

/// See [`presets_fitting`].
fn candidate_names(file_shapes: &[(String, Vec<usize>)]) -> Vec<String> {
    let leading = |name: &str| {
        file_shapes
            .iter()
            .find(|(n, s)| n == name && !s.is_empty())
            .map(|(_, s)| s[0])
    };
    // Blocks `prefix0.`, `prefix1.`, ... present in the file.
    let blocks = |prefix: &str| {
        (0..)
            .take_while(|i| {
                let p = format!("{prefix}{i}.");
                file_shapes.iter().any(|(n, _)| n.starts_with(&p))
            })
            .count()
    };
    let mut names: Vec<String> = PRESETS.iter().map(|p| p.to_string()).collect();
    for variant in ["-input-shortcut", "-final-bn", "-input-shortcut-final-bn"] {
        names.push(format!("preact-resnet-18{variant}"));
    }
    let wrn = |first_conv: &str, blocks: usize| {
        leading(first_conv)
            .filter(|c| c % 16 == 0)
            .map(|c| format!("{}-{}", 6 * blocks + 4, c / 16))
    };
    if let Some(size) = wrn("block1.layer.0.conv1.weight", blocks("block1.layer.")) {
        names.push(format!("wrn-{size}"));
    }
    let activations = ["relu", "silu"];
    if let Some(size) = wrn("layer.0.block.0.conv_0.weight", blocks("layer.0.block.")) {
        names.extend(activations.map(|a| format!("dm-wrn-{size}-{a}")));
    }
    if leading("conv_2d.weight").is_some() {
        for depth in [18, 34] {
            names.extend(activations.map(|a| format!("dm-preact-resnet-{depth}-{a}")));
        }
    }
    names
}

// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
