//! WideResNet in the layout of the TRADES/MART reference `WideResNet` (Zagoruyko & Komodakis,
//! pre-activation basic blocks), with the reference's `state_dict` names.
//!
//! TRADES' file also builds a `sub_block1` that its `forward` never uses; it is left out here (as
//! in MART's copy), so WRN-34-10 has PyTorch's 46,160,474 parameters. A checkpoint saved from the
//! TRADES class carries `sub_block1.*` tensors: drop them before loading (strict loading lists
//! them as unexpected). The reference pools with `avg_pool2d(out, 8)`; global average pooling is
//! the same on 32×32 inputs and also serves 96×96 ones. The reference's `dropRate` is 0 in every
//! script of the paper, so there is no dropout (a stochastic layer would also need its random state
//! in checkpoints for exact resumption).

use candle_core::Tensor;
type Result<T, E = candle_core::Error> = std::result::Result<T, E>;

use crate::layers::{global_avg_pool, BatchNorm2d, Builder, Conv2d, Init, Linear, Pass};
use crate::Error;
use spat_kernels::ops::FusedActivation;

/// Shape of a WideResNet: `depth = 6n + 4`, channel widths `[base, base·k, 2·base·k, 4·base·k]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WideResNetConfig {
    /// Depth `6n + 4` (34 for WRN-34-10): `n` blocks per stage.
    pub depth: usize,
    /// Widening factor `k` (10 for WRN-34-10).
    pub widen: usize,
    /// Width of the stem (16 in the paper's networks; smaller for test presets).
    pub base: usize,
    /// Number of outputs (classes), ≥ 1.
    pub num_classes: usize,
}

/// `bn1 → relu → conv1 → bn2 → relu → conv2`, plus a 1×1 `convShortcut` when the width changes.
/// As in the reference, when the width changes the shortcut is taken from the *activated* input.
#[derive(Debug)]
struct BasicBlock {
    bn1: BatchNorm2d,
    conv1: Conv2d,
    bn2: BatchNorm2d,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl BasicBlock {
    fn new(b: &mut Builder<'_>, cin: usize, cout: usize, stride: usize) -> Result<Self, Error> {
        let init = Init::KaimingNormalFanOut;
        Ok(Self {
            bn1: BatchNorm2d::new(b, "bn1", cin)?,
            conv1: Conv2d::new(b, "conv1", (cin, cout, 3), stride, init)?,
            bn2: BatchNorm2d::new(b, "bn2", cout)?,
            conv2: Conv2d::new(b, "conv2", (cout, cout, 3), 1, init)?,
            shortcut: if cin != cout {
                Some(Conv2d::new(
                    b,
                    "convShortcut",
                    (cin, cout, 1),
                    stride,
                    init,
                )?)
            } else {
                None
            },
        })
    }

    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let act = self.bn1.forward_pass(x, pass, FusedActivation::Relu)?;
        let mut out = self.conv1.forward(&act, pass)?;
        out = self.bn2.forward_pass(&out, pass, FusedActivation::Relu)?;
        out = self.conv2.forward(&out, pass)?;
        match &self.shortcut {
            Some(conv) => conv.forward(&act, pass)? + out,
            None => x + out,
        }
    }

    fn macs(&self, hw: (usize, usize)) -> (u64, (usize, usize)) {
        let (m1, hw1) = self.conv1.macs(hw);
        let (m2, _) = self.conv2.macs(hw1);
        let ms = self.shortcut.as_ref().map_or(0, |c| c.macs(hw).0);
        (m1 + m2 + ms, hw1)
    }
}

/// A WideResNet with the TRADES/MART reference's `state_dict` names (no dropout); built by
/// [`crate::build`] from a preset.
#[derive(Debug)]
pub struct WideResNet {
    conv1: Conv2d,
    blocks: Vec<BasicBlock>,
    bn1: BatchNorm2d,
    fc: Linear,
}

impl WideResNet {
    pub(crate) fn new(b: &mut Builder<'_>, cfg: &WideResNetConfig) -> Result<Self, Error> {
        if cfg.depth < 10 || !(cfg.depth - 4).is_multiple_of(6) {
            return Err(Error::Config(format!(
                "WideResNet depth must be 6n+4 with n >= 1, got {}",
                cfg.depth
            )));
        }
        let n = (cfg.depth - 4) / 6;
        let widths = [
            cfg.base,
            cfg.base * cfg.widen,
            2 * cfg.base * cfg.widen,
            4 * cfg.base * cfg.widen,
        ];
        let conv1 = Conv2d::new(b, "conv1", (3, widths[0], 3), 1, Init::KaimingNormalFanOut)?;
        let mut blocks = Vec::new();
        for (g, stride) in [1usize, 2, 2].into_iter().enumerate() {
            b.scope(&format!("block{}", g + 1), |b| {
                b.scope("layer", |b| {
                    for i in 0..n {
                        let cin = if i == 0 { widths[g] } else { widths[g + 1] };
                        let s = if i == 0 { stride } else { 1 };
                        let block = b.scope(&i.to_string(), |b| {
                            BasicBlock::new(b, cin, widths[g + 1], s)
                        })?;
                        blocks.push(block);
                    }
                    Ok::<_, Error>(())
                })
            })?;
        }
        let bn1 = BatchNorm2d::new(b, "bn1", widths[3])?;
        let fc = Linear::new(b, "fc", (widths[3], cfg.num_classes), true)?;
        Ok(Self {
            conv1,
            blocks,
            bn1,
            fc,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let mut out = self.conv1.forward(x, pass)?;
        for block in &self.blocks {
            out = block.forward(&out, pass)?;
        }
        let out = self.bn1.forward_pass(&out, pass, FusedActivation::Relu)?;
        self.fc.forward(&global_avg_pool(&out, pass)?, pass)
    }

    /// Multiply-accumulates of one image's forward pass at input size `hw` (height, width).
    pub fn macs(&self, hw: (usize, usize)) -> u64 {
        let (mut total, mut hw) = self.conv1.macs(hw);
        for block in &self.blocks {
            let (m, next) = block.macs(hw);
            total += m;
            hw = next;
        }
        total + self.fc.macs()
    }
}
