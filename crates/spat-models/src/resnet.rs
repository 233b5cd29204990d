//! ResNet-18/50 and PreAct-ResNet-18 in the CIFAR form of kuangliu's `pytorch-cifar` (3×3
//! stride-1 stem, no max-pool), as copied into the MART/TRADES code bases, with their
//! `state_dict` names. Pooling is global (adaptive), so the same network runs on 32×32 and 96×96
//! inputs; on 32×32 it equals the references' `avg_pool2d(out, 4)`.
//!
//! PreAct-ResNet-18 follows kuangliu's `preact_resnet.py`: no stem BN and no BN/ReLU after the
//! last block, strided shortcuts reading the activated input. `final_bn` adds the BN–ReLU `bn`
//! before pooling of Rice et al.'s robust-overfitting code, and [`BlockKind::PreActInputShortcut`]
//! is the block of fast_adversarial (Wong et al. 2020), GradAlign (Andriushchenko et al. 2020) and
//! RobustBench's `PreActBlock`, whose shortcut reads the block's input.

use candle_core::Tensor;
type Result<T, E = candle_core::Error> = std::result::Result<T, E>;

use crate::layers::{global_avg_pool, BatchNorm2d, Builder, Conv2d, Init, Linear, Pass};
use crate::Error;
use spat_kernels::ops::FusedActivation;

const INIT: Init = Init::PytorchDefault;

/// Which residual block a ResNet stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convolutions, post-activation (ResNet-18/34).
    Basic,
    /// 1×1 → 3×3 → 1×1 with expansion 4, post-activation (ResNet-50).
    Bottleneck,
    /// Two 3×3 convolutions, pre-activation (PreAct-ResNet-18); a strided shortcut reads
    /// `relu(bn1(x))`.
    PreAct,
    /// [`BlockKind::PreAct`] whose strided shortcut reads the block's input `x`.
    PreActInputShortcut,
}

impl BlockKind {
    fn is_preact(self) -> bool {
        matches!(self, BlockKind::PreAct | BlockKind::PreActInputShortcut)
    }

    fn expansion(self) -> usize {
        match self {
            BlockKind::Bottleneck => 4,
            _ => 1,
        }
    }
}

/// Shape of a CIFAR-form ResNet (3×3 stem, no max-pool), as kuangliu's `pytorch-cifar`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResNetConfig {
    /// Residual block type of every stage.
    pub block: BlockKind,
    /// Blocks per stage (`[2, 2, 2, 2]` for ResNet-18, `[3, 4, 6, 3]` for ResNet-50).
    pub layers: [usize; 4],
    /// Width of the first stage (64 in the paper's networks).
    pub base: usize,
    /// Number of outputs (classes), ≥ 1.
    pub num_classes: usize,
    /// A BN–ReLU (`bn`) between the last block and the pooling.
    pub final_bn: bool,
}

#[derive(Debug)]
struct Shortcut {
    conv: Conv2d,
    bn: Option<BatchNorm2d>,
}

#[derive(Debug)]
struct Block {
    kind: BlockKind,
    convs: Vec<Conv2d>,
    bns: Vec<BatchNorm2d>,
    shortcut: Option<Shortcut>,
}

impl Block {
    fn new(
        b: &mut Builder<'_>,
        kind: BlockKind,
        cin: usize,
        planes: usize,
        stride: usize,
    ) -> Result<Self, Error> {
        let cout = planes * kind.expansion();
        let (convs, bns) = match kind {
            BlockKind::Basic => (
                vec![
                    Conv2d::new(b, "conv1", (cin, planes, 3), stride, INIT)?,
                    Conv2d::new(b, "conv2", (planes, planes, 3), 1, INIT)?,
                ],
                vec![
                    BatchNorm2d::new(b, "bn1", planes)?,
                    BatchNorm2d::new(b, "bn2", planes)?,
                ],
            ),
            BlockKind::PreAct | BlockKind::PreActInputShortcut => {
                let bn1 = BatchNorm2d::new(b, "bn1", cin)?;
                let conv1 = Conv2d::new(b, "conv1", (cin, planes, 3), stride, INIT)?;
                let bn2 = BatchNorm2d::new(b, "bn2", planes)?;
                let conv2 = Conv2d::new(b, "conv2", (planes, planes, 3), 1, INIT)?;
                (vec![conv1, conv2], vec![bn1, bn2])
            }
            BlockKind::Bottleneck => (
                vec![
                    Conv2d::new(b, "conv1", (cin, planes, 1), 1, INIT)?,
                    Conv2d::new(b, "conv2", (planes, planes, 3), stride, INIT)?,
                    Conv2d::new(b, "conv3", (planes, cout, 1), 1, INIT)?,
                ],
                vec![
                    BatchNorm2d::new(b, "bn1", planes)?,
                    BatchNorm2d::new(b, "bn2", planes)?,
                    BatchNorm2d::new(b, "bn3", cout)?,
                ],
            ),
        };
        let shortcut = if stride != 1 || cin != cout {
            Some(b.scope("shortcut", |b| {
                Ok::<_, Error>(Shortcut {
                    conv: Conv2d::new(b, "0", (cin, cout, 1), stride, INIT)?,
                    bn: if kind.is_preact() {
                        None
                    } else {
                        Some(BatchNorm2d::new(b, "1", cout)?)
                    },
                })
            })?)
        } else {
            None
        };
        Ok(Self {
            kind,
            convs,
            bns,
            shortcut,
        })
    }

    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        match self.kind {
            BlockKind::PreAct | BlockKind::PreActInputShortcut => {
                let act = self.bns[0].forward_pass(x, pass, FusedActivation::Relu)?;
                let skip = match &self.shortcut {
                    Some(s) if self.kind == BlockKind::PreAct => s.conv.forward(&act, pass)?,
                    Some(s) => s.conv.forward(x, pass)?,
                    None => x.clone(),
                };
                let out = self.convs[0].forward(&act, pass)?;
                let out = self.convs[1].forward(
                    &self.bns[1].forward_pass(&out, pass, FusedActivation::Relu)?,
                    pass,
                )?;
                out + skip
            }
            BlockKind::Basic | BlockKind::Bottleneck => {
                let mut out = x.clone();
                let last = self.convs.len() - 1;
                for (i, (conv, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
                    let y = conv.forward(&out, pass)?;
                    out = if i == last {
                        bn.forward_pass(&y, pass, FusedActivation::Identity)?
                    } else {
                        bn.forward_pass(&y, pass, FusedActivation::Relu)?
                    };
                }
                let skip = match &self.shortcut {
                    Some(s) => {
                        let y = s.conv.forward(x, pass)?;
                        match &s.bn {
                            Some(bn) => bn.forward_pass(&y, pass, FusedActivation::Identity)?,
                            None => y,
                        }
                    }
                    None => x.clone(),
                };
                spat_kernels::ops::add_relu(&out, &skip)
            }
        }
    }

    fn macs(&self, hw: (usize, usize)) -> (u64, (usize, usize)) {
        let mut total = 0;
        let mut cur = hw;
        for conv in &self.convs {
            let (m, next) = conv.macs(cur);
            total += m;
            cur = next;
        }
        if let Some(s) = &self.shortcut {
            total += s.conv.macs(hw).0;
        }
        (total, cur)
    }
}

/// A CIFAR-form ResNet or PreAct-ResNet with the reference's `state_dict` names; built by
/// [`crate::build`] from a preset.
#[derive(Debug)]
pub struct ResNet {
    conv1: Conv2d,
    /// Stem BN `bn1` of the post-activation nets (the pre-activation net has none).
    stem_bn: Option<BatchNorm2d>,
    blocks: Vec<Block>,
    final_bn: Option<BatchNorm2d>,
    linear: Linear,
}

impl ResNet {
    pub(crate) fn new(b: &mut Builder<'_>, cfg: &ResNetConfig) -> Result<Self, Error> {
        let conv1 = Conv2d::new(b, "conv1", (3, cfg.base, 3), 1, INIT)?;
        let stem_bn = if cfg.block.is_preact() {
            None
        } else {
            Some(BatchNorm2d::new(b, "bn1", cfg.base)?)
        };
        let mut blocks = Vec::new();
        let mut cin = cfg.base;
        for (stage, &count) in cfg.layers.iter().enumerate() {
            let planes = cfg.base << stage;
            let stride = if stage == 0 { 1 } else { 2 };
            b.scope(&format!("layer{}", stage + 1), |b| {
                for i in 0..count {
                    let s = if i == 0 { stride } else { 1 };
                    blocks.push(
                        b.scope(&i.to_string(), |b| Block::new(b, cfg.block, cin, planes, s))?,
                    );
                    cin = planes * cfg.block.expansion();
                }
                Ok::<_, Error>(())
            })?;
        }
        let final_bn = match cfg.final_bn {
            true => Some(BatchNorm2d::new(b, "bn", cin)?),
            false => None,
        };
        let linear = Linear::new(b, "linear", (cin, cfg.num_classes), false)?;
        Ok(Self {
            conv1,
            stem_bn,
            blocks,
            final_bn,
            linear,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let mut out = self.conv1.forward(x, pass)?;
        if let Some(bn) = &self.stem_bn {
            out = bn.forward_pass(&out, pass, FusedActivation::Relu)?;
        }
        for block in &self.blocks {
            out = block.forward(&out, pass)?;
        }
        if let Some(bn) = &self.final_bn {
            out = bn.forward_pass(&out, pass, FusedActivation::Relu)?;
        }
        self.linear.forward(&global_avg_pool(&out, pass)?, pass)
    }

    /// Multiply-accumulates of one image's forward pass at input size `hw` (height, width).
    pub fn macs(&self, hw: (usize, usize)) -> u64 {
        let (mut total, mut cur) = self.conv1.macs(hw);
        for block in &self.blocks {
            let (m, next) = block.macs(cur);
            total += m;
            cur = next;
        }
        total + self.linear.macs()
    }
}
