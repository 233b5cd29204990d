//! The DeepMind-layout networks of RobustBench's `dm_wide_resnet.py` (a port of deepmind-research's
//! `adversarial_robustness/pytorch/model_zoo.py`), with its `state_dict` names: the WideResNets and
//! PreAct-ResNets of Gowal et al. 2020, Rebuffi et al. 2021, Wang et al. 2023 and their successors
//! on RobustBench's leaderboards.
//!
//! Both differ from the TRADES / kuangliu networks in three ways that change the numbers:
//! convolutions use TensorFlow's "SAME" padding, which before a stride-2 3×3 convolution pads one
//! row and column on the bottom and right only (`F.pad(x, (0, 1, 0, 1))`, so output pixel `i`
//! reads input rows `2i .. 2i + 2`, not `2i − 1 .. 2i + 1`); the activation may be SiLU
//! (`x·sigmoid(x)`, RobustBench's `Swish` or `nn.SiLU`); and the PreAct-ResNet's strided shortcut
//! is a 3×3 convolution of the raw block input. RobustBench's classes also subtract `mean` and
//! divide by `std` first; those are not in their `state_dict`, and spat applies them around the
//! network (`spat_core::Normalized`, with [`spat_spec::ModelName::input_normalization`]).
//! Weights are drawn as PyTorch's defaults (the port sets no initialiser).

use candle_core::Tensor;
type Result<T, E = candle_core::Error> = std::result::Result<T, E>;

use spat_spec::Activation;

use crate::layers::{global_avg_pool, BatchNorm2d, Builder, Conv2d, Init, Linear, Pass};
use crate::Error;
use spat_kernels::ops::FusedActivation;

const INIT: Init = Init::PytorchDefault;

/// DeepMind's WideResNet-`depth`-`width`: widths `base·[1, width, 2·width, 4·width]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DmWideResNetConfig {
    /// Depth `6n + 4` (28 for WRN-28-10).
    pub depth: usize,
    /// Widening factor (10 for WRN-28-10).
    pub width: usize,
    /// Stem width: 16 in every published network (narrower for test fixtures).
    pub base: usize,
    /// ReLU or SiLU (Swish) between layers.
    pub activation: Activation,
    /// Number of outputs (classes), ≥ 1.
    pub num_classes: usize,
}

/// DeepMind's PreAct-ResNet-18 or -34: stage widths `base·[1, 2, 4, 8]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DmPreActResNetConfig {
    /// 18 or 34.
    pub depth: usize,
    /// Width of the first stage: 64 in the published networks.
    pub base: usize,
    /// ReLU or SiLU (Swish) between layers.
    pub activation: Activation,
    /// Number of outputs (classes), ≥ 1.
    pub num_classes: usize,
}

/// `act(bn(x))`.
fn bn_act(bn: &BatchNorm2d, x: &Tensor, pass: Pass, act: Activation) -> Result<Tensor> {
    match act {
        Activation::Relu => bn.forward_pass(x, pass, FusedActivation::Relu),
        Activation::Silu => bn.forward_pass(x, pass, FusedActivation::Silu),
    }
}

/// A 3×3 convolution with TensorFlow's "SAME" padding at stride 1 or 2.
#[derive(Debug)]
struct SameConv {
    conv: Conv2d,
    stride: usize,
}

impl SameConv {
    fn new(
        b: &mut Builder<'_>,
        name: &str,
        (cin, cout): (usize, usize),
        stride: usize,
    ) -> Result<Self, Error> {
        if stride != 1 && stride != 2 {
            return Err(Error::Config(format!("unsupported stride {stride}")));
        }
        let conv = Conv2d::new(b, name, (cin, cout, 3), stride, INIT)?;
        // Stride 1: (1, 1, 1, 1) is ordinary padding 1; stride 2 pads explicitly in forward.
        let conv = if stride == 1 {
            conv
        } else {
            conv.with_padding(0)
        };
        Ok(Self { conv, stride })
    }

    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        if self.stride == 1 {
            return self.conv.forward(x, pass);
        }
        let padded = x.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?;
        self.conv.forward(&padded, pass)
    }

    fn macs(&self, (h, w): (usize, usize)) -> (u64, (usize, usize)) {
        match self.stride {
            1 => self.conv.macs((h, w)),
            _ => self.conv.macs((h + 1, w + 1)),
        }
    }
}

/// `_Block`: `batchnorm_0 → act → conv_0 → batchnorm_1 → act → conv_1`, plus a 1×1 `shortcut`
/// of the activated input when the width changes (else the raw input is added).
#[derive(Debug)]
struct WrnBlock {
    batchnorm_0: BatchNorm2d,
    conv_0: SameConv,
    batchnorm_1: BatchNorm2d,
    conv_1: Conv2d,
    shortcut: Option<Conv2d>,
}

impl WrnBlock {
    fn new(b: &mut Builder<'_>, cin: usize, cout: usize, stride: usize) -> Result<Self, Error> {
        Ok(Self {
            batchnorm_0: BatchNorm2d::new(b, "batchnorm_0", cin)?,
            conv_0: SameConv::new(b, "conv_0", (cin, cout), stride)?,
            batchnorm_1: BatchNorm2d::new(b, "batchnorm_1", cout)?,
            conv_1: Conv2d::new(b, "conv_1", (cout, cout, 3), 1, INIT)?,
            shortcut: match cin != cout {
                true => Some(Conv2d::new(b, "shortcut", (cin, cout, 1), stride, INIT)?),
                false => None,
            },
        })
    }

    fn forward(&self, x: &Tensor, pass: Pass, act: Activation) -> Result<Tensor> {
        let activated = bn_act(&self.batchnorm_0, x, pass, act)?;
        let out = self.conv_0.forward(&activated, pass)?;
        let out = self
            .conv_1
            .forward(&bn_act(&self.batchnorm_1, &out, pass, act)?, pass)?;
        match &self.shortcut {
            Some(conv) => conv.forward(&activated, pass)? + out,
            None => x + out,
        }
    }

    fn macs(&self, hw: (usize, usize)) -> (u64, (usize, usize)) {
        let (m0, out) = self.conv_0.macs(hw);
        let (m1, _) = self.conv_1.macs(out);
        let ms = self.shortcut.as_ref().map_or(0, |c| c.macs(hw).0);
        (m0 + m1 + ms, out)
    }
}

/// `_PreActBlock`: `batchnorm_0 → act → conv_2d_1 → batchnorm_1 → act → conv_2d_2`, plus a 3×3
/// "SAME" `shortcut` of the raw input when the stride or width changes.
#[derive(Debug)]
struct PreActBlock {
    batchnorm_0: BatchNorm2d,
    conv_2d_1: SameConv,
    batchnorm_1: BatchNorm2d,
    conv_2d_2: Conv2d,
    shortcut: Option<SameConv>,
}

impl PreActBlock {
    fn new(b: &mut Builder<'_>, cin: usize, cout: usize, stride: usize) -> Result<Self, Error> {
        Ok(Self {
            batchnorm_0: BatchNorm2d::new(b, "batchnorm_0", cin)?,
            conv_2d_1: SameConv::new(b, "conv_2d_1", (cin, cout), stride)?,
            batchnorm_1: BatchNorm2d::new(b, "batchnorm_1", cout)?,
            conv_2d_2: Conv2d::new(b, "conv_2d_2", (cout, cout, 3), 1, INIT)?,
            shortcut: match stride != 1 || cin != cout {
                true => Some(SameConv::new(b, "shortcut", (cin, cout), stride)?),
                false => None,
            },
        })
    }

    fn forward(&self, x: &Tensor, pass: Pass, act: Activation) -> Result<Tensor> {
        let activated = bn_act(&self.batchnorm_0, x, pass, act)?;
        let skip = match &self.shortcut {
            Some(conv) => conv.forward(x, pass)?,
            None => x.clone(),
        };
        let out = self.conv_2d_1.forward(&activated, pass)?;
        let out = self
            .conv_2d_2
            .forward(&bn_act(&self.batchnorm_1, &out, pass, act)?, pass)?;
        out + skip
    }

    fn macs(&self, hw: (usize, usize)) -> (u64, (usize, usize)) {
        let (m1, out) = self.conv_2d_1.macs(hw);
        let (m2, _) = self.conv_2d_2.macs(out);
        let ms = self.shortcut.as_ref().map_or(0, |c| c.macs(hw).0);
        (m1 + m2 + ms, out)
    }
}

/// A residual block of either network.
#[derive(Debug)]
enum Block {
    Wrn(WrnBlock),
    PreAct(PreActBlock),
}

impl Block {
    fn forward(&self, x: &Tensor, pass: Pass, act: Activation) -> Result<Tensor> {
        match self {
            Block::Wrn(b) => b.forward(x, pass, act),
            Block::PreAct(b) => b.forward(x, pass, act),
        }
    }

    fn macs(&self, hw: (usize, usize)) -> (u64, (usize, usize)) {
        match self {
            Block::Wrn(b) => b.macs(hw),
            Block::PreAct(b) => b.macs(hw),
        }
    }
}

/// Either DeepMind network: a stem convolution, residual blocks, `batchnorm → act`, global
/// average pooling (RobustBench's `avg_pool2d(out, 8)` / `(out, 4)` on 32×32 images) and
/// `logits`.
#[derive(Debug)]
pub struct DmNetwork {
    stem: Conv2d,
    blocks: Vec<Block>,
    batchnorm: BatchNorm2d,
    logits: Linear,
    activation: Activation,
}

impl DmNetwork {
    pub(crate) fn wide_resnet(
        b: &mut Builder<'_>,
        cfg: &DmWideResNetConfig,
    ) -> Result<Self, Error> {
        if cfg.depth < 10 || !(cfg.depth - 4).is_multiple_of(6) {
            return Err(Error::Config(format!(
                "DeepMind WideResNet depth must be 6n+4 with n >= 1, got {}",
                cfg.depth
            )));
        }
        let n = (cfg.depth - 4) / 6;
        let w = [
            cfg.base,
            cfg.base * cfg.width,
            2 * cfg.base * cfg.width,
            4 * cfg.base * cfg.width,
        ];
        let stem = Conv2d::new(b, "init_conv", (3, w[0], 3), 1, INIT)?;
        let mut blocks = Vec::new();
        b.scope("layer", |b| {
            for (g, stride) in [1usize, 2, 2].into_iter().enumerate() {
                b.scope(&g.to_string(), |b| {
                    b.scope("block", |b| {
                        for i in 0..n {
                            let (cin, s) = if i == 0 {
                                (w[g], stride)
                            } else {
                                (w[g + 1], 1)
                            };
                            let block =
                                b.scope(&i.to_string(), |b| WrnBlock::new(b, cin, w[g + 1], s))?;
                            blocks.push(Block::Wrn(block));
                        }
                        Ok::<_, Error>(())
                    })
                })?;
            }
            Ok::<_, Error>(())
        })?;
        Self::head(b, stem, blocks, w[3], cfg.num_classes, cfg.activation)
    }

    pub(crate) fn preact_resnet(
        b: &mut Builder<'_>,
        cfg: &DmPreActResNetConfig,
    ) -> Result<Self, Error> {
        let counts = match cfg.depth {
            18 => [2, 2, 2, 2],
            34 => [3, 4, 6, 3],
            d => {
                return Err(Error::Config(format!(
                    "DeepMind PreAct-ResNet depth must be 18 or 34, got {d}"
                )))
            }
        };
        let stem = Conv2d::new(b, "conv_2d", (3, cfg.base, 3), 1, INIT)?;
        let mut blocks = Vec::new();
        let mut cin = cfg.base;
        for (k, &count) in counts.iter().enumerate() {
            let cout = cfg.base << k;
            let stride = if k == 0 { 1 } else { 2 };
            b.scope(&format!("layer_{k}"), |b| {
                for i in 0..count {
                    let s = if i == 0 { stride } else { 1 };
                    let block = b.scope(&i.to_string(), |b| PreActBlock::new(b, cin, cout, s))?;
                    blocks.push(Block::PreAct(block));
                    cin = cout;
                }
                Ok::<_, Error>(())
            })?;
        }
        Self::head(b, stem, blocks, cin, cfg.num_classes, cfg.activation)
    }

    fn head(
        b: &mut Builder<'_>,
        stem: Conv2d,
        blocks: Vec<Block>,
        channels: usize,
        num_classes: usize,
        activation: Activation,
    ) -> Result<Self, Error> {
        Ok(Self {
            stem,
            blocks,
            batchnorm: BatchNorm2d::new(b, "batchnorm", channels)?,
            logits: Linear::new(b, "logits", (channels, num_classes), false)?,
            activation,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let mut out = self.stem.forward(x, pass)?;
        for block in &self.blocks {
            out = block.forward(&out, pass, self.activation)?;
        }
        let out = bn_act(&self.batchnorm, &out, pass, self.activation)?;
        self.logits.forward(&global_avg_pool(&out, pass)?, pass)
    }

    /// Multiply-accumulates of one image's forward pass at input size `hw` (height, width).
    pub fn macs(&self, hw: (usize, usize)) -> u64 {
        let (mut total, mut hw) = self.stem.macs(hw);
        for block in &self.blocks {
            let (m, next) = block.macs(hw);
            total += m;
            hw = next;
        }
        total + self.logits.macs()
    }
}
