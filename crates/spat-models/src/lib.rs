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

mod bn_cpu;
pub mod layers;
pub mod resnet;
pub mod wide_resnet;

use std::path::Path;

use candle_core::{Device, Tensor};
use spat_core::{Classifier, Mode, Network, VarStore};

pub use resnet::{BlockKind, ResNet, ResNetConfig};
pub use wide_resnet::{WideResNet, WideResNetConfig};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Core(#[from] spat_core::Error),
    #[error("unknown model preset `{0}`; available: {list}", list = PRESETS.join(", "))]
    UnknownPreset(String),
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Preset names accepted by [`build`].
pub const PRESETS: &[&str] = &[
    "wrn-34-10",
    "wrn-28-10",
    "wrn-16-2",
    "resnet-18",
    "resnet-50",
    "preact-resnet-18",
    "tiny",
];

/// An architecture with its hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Architecture {
    WideResNet(WideResNetConfig),
    ResNet(ResNetConfig),
}

impl Architecture {
    /// The architecture of a preset for `num_classes` outputs.
    pub fn preset(name: &str, num_classes: usize) -> Result<Self> {
        let wrn = |depth, widen, base| {
            Architecture::WideResNet(WideResNetConfig {
                depth,
                widen,
                base,
                num_classes,
                drop_rate: 0.0,
            })
        };
        let resnet = |block, layers| {
            Architecture::ResNet(ResNetConfig {
                block,
                layers,
                base: 64,
                num_classes,
            })
        };
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
}

impl Model {
    /// Builds `arch` with weights initialised as the reference does, from `host_rng(seed, INIT)`.
    pub fn new(arch: &Architecture, device: &Device, seed: u64) -> Result<Self> {
        let mut store = VarStore::new(device);
        let mut rng = spat_core::rng::host_rng(seed, spat_core::rng::streams::INIT);
        let mut b = layers::Builder {
            store: &mut store,
            rng: &mut rng,
            prefix: Vec::new(),
            seed,
        };
        let (net, num_classes) = match arch {
            Architecture::WideResNet(c) => (
                Net::WideResNet(Box::new(WideResNet::new(&mut b, c)?)),
                c.num_classes,
            ),
            Architecture::ResNet(c) => (
                Net::ResNet(Box::new(ResNet::new(&mut b, c)?)),
                c.num_classes,
            ),
        };
        Ok(Self {
            net,
            store,
            num_classes,
        })
    }

    /// Multiply-accumulate operations of one forward pass on a `3 × h × w` image.
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        match &self.net {
            Net::WideResNet(n) => n.macs((h, w)),
            Net::ResNet(n) => n.macs((h, w)),
        }
    }
}

impl Classifier for Model {
    fn logits(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        layers::check_dims(x)?;
        match &self.net {
            Net::WideResNet(n) => n.forward(x, mode),
            Net::ResNet(n) => n.forward(x, mode),
        }
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
    Ok(Box::new(Model::new(
        &Architecture::preset(preset, num_classes)?,
        device,
        seed,
    )?))
}

/// Size and cost of a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ModelInfo {
    /// Trainable scalars, as `sum(p.numel() for p in model.parameters())` in PyTorch.
    pub parameters: usize,
    /// Buffer scalars (running means/variances and `num_batches_tracked`).
    pub buffers: usize,
    /// Floating-point operations of one forward pass on one 3×32×32 image, counted as
    /// 2 × the multiply-accumulates of convolutions and linear layers (BN, ReLU, pooling excluded).
    pub flops: u64,
}

/// Counts a preset by building it on the CPU (weights are drawn, so the counts are the model's own).
pub fn model_info(preset: &str, num_classes: usize) -> Result<ModelInfo> {
    let model = Model::new(&Architecture::preset(preset, num_classes)?, &Device::Cpu, 0)?;
    Ok(ModelInfo {
        parameters: model.store.parameter_count(),
        buffers: model.store.buffer_count(),
        flops: 2 * model.macs(32, 32),
    })
}

/// Loads a safetensors file (spat's, or a PyTorch `state_dict` converted to safetensors) strictly.
pub fn load_weights(model: &dyn Network, path: &Path) -> Result<()> {
    Ok(model.var_store().load(path)?)
}
