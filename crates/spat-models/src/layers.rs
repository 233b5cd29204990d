//! Building blocks: convolution, linear and a three-mode batch normalisation, all holding
//! [`Var`]s registered in a [`VarStore`] under PyTorch names.

use candle_core::{DType, Device, Tensor, Var};
type Result<T, E = candle_core::Error> = std::result::Result<T, E>;
use spat_core::rng::HostRng;
use spat_core::{Mode, VarKind, VarStore};
use spat_kernels::ops::{self, FusedActivation};

use crate::Error;

/// How a layer's weights are drawn at construction.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// `N(0, 2 / (k·k·out_channels))`: the WideResNet reference (Kaiming normal, fan-out).
    KaimingNormalFanOut,
    /// `U(-1/√fan_in, 1/√fan_in)`: PyTorch's default for `Conv2d`/`Linear` (`kaiming_uniform_(a=√5)`).
    PytorchDefault,
}

/// A variable a network declares: its `state_dict` name, shape and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// The PyTorch `state_dict` name (`block1.layer.0.conv1.weight`).
    pub name: String,
    /// The variable's shape.
    pub shape: Vec<usize>,
    /// Parameter (trained) or buffer (BN running statistics).
    pub kind: VarKind,
}

/// Creates the variables of a network under their names. A *dry* builder only records names and
/// shapes (layers then hold empty placeholders and must not be run): that is how sizes and costs
/// of large presets are counted without drawing their weights, from the same construction code.
pub(crate) struct Builder<'a> {
    pub store: &'a mut VarStore,
    pub rng: &'a mut HostRng,
    pub prefix: Vec<String>,
    pub dry: bool,
    pub declared: Vec<Declared>,
}

impl<'a> Builder<'a> {
    pub fn new(store: &'a mut VarStore, rng: &'a mut HostRng, dry: bool) -> Self {
        Self {
            store,
            rng,
            prefix: Vec::new(),
            dry,
            declared: Vec::new(),
        }
    }
}

impl Builder<'_> {
    pub fn path(&self, leaf: &str) -> String {
        let mut p = self.prefix.join(".");
        if !p.is_empty() {
            p.push('.');
        }
        p.push_str(leaf);
        p
    }

    /// Runs `f` with `name` pushed onto the variable-name prefix.
    pub fn scope<T>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        self.prefix.push(name.to_string());
        let out = f(self);
        self.prefix.pop();
        out
    }

    fn device(&self) -> Device {
        self.store.device().clone()
    }

    fn uniform(&mut self, shape: &[usize], bound: f32) -> Result<Tensor> {
        spat_core::rng::uniform(self.rng, shape, -bound, bound, &self.device())
    }

    fn normal(&mut self, shape: &[usize], std: f32) -> Result<Tensor> {
        spat_core::rng::normal(self.rng, shape, std, &self.device())
    }

    /// Declares a variable; `init` draws its value (not called by a dry builder).
    fn declare(
        &mut self,
        leaf: &str,
        shape: &[usize],
        kind: VarKind,
        init: impl FnOnce(&mut Self) -> Result<Tensor>,
    ) -> Result<Var, Error> {
        let name = self.path(leaf);
        self.declared.push(Declared {
            name: name.clone(),
            shape: shape.to_vec(),
            kind,
        });
        if self.dry {
            return Ok(Var::from_tensor(&Tensor::zeros(
                0,
                DType::F32,
                &Device::Cpu,
            )?)?);
        }
        let value = init(self)?;
        debug_assert_eq!(value.dims(), shape, "{name}");
        Ok(match kind {
            VarKind::Parameter => self.store.add_parameter(name, value)?,
            VarKind::Buffer => self.store.add_buffer(name, value)?,
        })
    }

    fn parameter(
        &mut self,
        leaf: &str,
        shape: &[usize],
        init: impl FnOnce(&mut Self) -> Result<Tensor>,
    ) -> Result<Var, Error> {
        self.declare(leaf, shape, VarKind::Parameter, init)
    }

    fn buffer(
        &mut self,
        leaf: &str,
        shape: &[usize],
        init: impl FnOnce(&mut Self) -> Result<Tensor>,
    ) -> Result<Var, Error> {
        self.declare(leaf, shape, VarKind::Buffer, init)
    }
}

/// How one forward pass runs: the batch-norm mode, the dtype of convolutions and matrix products,
/// and whether the parameters enter autograd's graph.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pass {
    pub mode: Mode,
    pub compute: DType,
    /// Parameters enter the graph as constants: backward computes no weight gradient at all.
    pub constant_weights: bool,
}

impl Pass {
    pub fn new(mode: Mode, precision: crate::Precision, constant_weights: bool) -> Self {
        Self {
            mode,
            compute: precision.compute_dtype(),
            constant_weights,
        }
    }

    /// `var` as this pass uses it: detached if weights are constants.
    fn param(&self, var: &Var) -> Tensor {
        if self.constant_weights {
            var.as_tensor().detach()
        } else {
            var.as_tensor().clone()
        }
    }

    /// `var` in the compute dtype; the cast is differentiable, so `f32` master weights receive
    /// the gradient of their `bf16` copy.
    fn compute_param(&self, var: &Var) -> Result<Tensor> {
        self.param(var).to_dtype(self.compute)
    }
}

/// 2-D convolution without bias (every reference network here uses `bias=False`).
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Var,
    /// `(in_channels, out_channels, kernel_size)`.
    geometry: (usize, usize, usize),
    stride: usize,
    padding: usize,
}

impl Conv2d {
    pub(crate) fn new(
        b: &mut Builder<'_>,
        name: &str,
        (cin, cout, k): (usize, usize, usize),
        stride: usize,
        init: Init,
    ) -> Result<Self, Error> {
        let shape = [cout, cin, k, k];
        let weight = b.scope(name, |b| {
            b.parameter("weight", &shape, |b| match init {
                Init::KaimingNormalFanOut => {
                    b.normal(&shape, (2.0 / (k * k * cout) as f64).sqrt() as f32)
                }
                Init::PytorchDefault => b.uniform(&shape, 1.0 / ((cin * k * k) as f32).sqrt()),
            })
        })?;
        Ok(Self {
            weight,
            geometry: (cin, cout, k),
            stride,
            padding: k / 2,
        })
    }

    /// The same layer padding every side with `padding` zeros instead of `kernel_size / 2`.
    pub(crate) fn with_padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    /// `x` (in the pass's compute dtype) convolved by [`ops::conv2d`].
    pub(crate) fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let weight = pass.compute_param(&self.weight)?;
        ops::conv2d(x, &weight, self.stride, self.padding)
    }

    /// candle's own convolution and backward (im2col + matrix product; any device).
    #[cfg(test)]
    pub(crate) fn forward_candle(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(self.weight.as_tensor(), self.padding, self.stride, 1, 1)
    }

    /// spat's own convolution ([`ops::conv2d`]) on the `f32` weights.
    #[cfg(test)]
    pub(crate) fn forward_spat(&self, x: &Tensor) -> Result<Tensor> {
        ops::conv2d(x, self.weight.as_tensor(), self.stride, self.padding)
    }

    /// Multiply-accumulates for one image whose input is `h × w`; returns the output size too.
    pub fn macs(&self, (h, w): (usize, usize)) -> (u64, (usize, usize)) {
        let (cin, cout, k) = self.geometry;
        let oh = (h + 2 * self.padding - k) / self.stride + 1;
        let ow = (w + 2 * self.padding - k) / self.stride + 1;
        ((cout * cin * k * k * oh * ow) as u64, (oh, ow))
    }
}

/// Fully connected layer `y = x Wᵀ + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Var,
    bias: Var,
    features: (usize, usize),
}

impl Linear {
    pub(crate) fn new(
        b: &mut Builder<'_>,
        name: &str,
        (fin, fout): (usize, usize),
        zero_bias: bool,
    ) -> Result<Self, Error> {
        let bound = 1.0 / (fin as f32).sqrt();
        b.scope(name, |b| {
            Ok(Self {
                weight: b.parameter("weight", &[fout, fin], |b| b.uniform(&[fout, fin], bound))?,
                bias: b.parameter("bias", &[fout], |b| {
                    if zero_bias {
                        Tensor::zeros(fout, DType::F32, &b.device())
                    } else {
                        b.uniform(&[fout], bound)
                    }
                })?,
                features: (fin, fout),
            })
        })
    }

    /// `x W^T + b` in the dtype of `x` (the pass's compute dtype).
    pub(crate) fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let weight = pass.compute_param(&self.weight)?;
        let bias = pass.compute_param(&self.bias)?;
        spat_kernels::ops::linear(x, &weight, &bias)
    }

    /// Multiply-accumulates of one image's forward pass (`in_features · out_features`).
    pub fn macs(&self) -> u64 {
        (self.features.0 * self.features.1) as u64
    }
}

/// Batch normalisation over `(N, H, W)` with PyTorch's semantics and spat's three modes.
///
/// `Train` normalises with the biased batch variance and moves the running estimates by
/// `momentum = 0.1` towards the batch mean and the *unbiased* batch variance, as
/// `torch.nn.BatchNorm2d` does; `TrainFrozenBn` normalises with batch statistics but leaves the
/// running estimates alone; `Eval` uses the running estimates.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    weight: Var,
    bias: Var,
    running_mean: Var,
    running_var: Var,
    num_batches_tracked: Var,
    channels: usize,
}

const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

impl BatchNorm2d {
    pub(crate) fn new(b: &mut Builder<'_>, name: &str, channels: usize) -> Result<Self, Error> {
        let c = [channels];
        let ones = |b: &mut Builder<'_>| Tensor::ones(channels, DType::F32, &b.device());
        let zeros = |b: &mut Builder<'_>| Tensor::zeros(channels, DType::F32, &b.device());
        b.scope(name, |b| {
            Ok(Self {
                weight: b.parameter("weight", &c, ones)?,
                bias: b.parameter("bias", &c, zeros)?,
                running_mean: b.buffer("running_mean", &c, zeros)?,
                running_var: b.buffer("running_var", &c, ones)?,
                num_batches_tracked: b.buffer("num_batches_tracked", &[], |b| {
                    Tensor::new(0i64, &b.device())
                })?,
                channels,
            })
        })
    }

    /// Normalises `x` as `mode` says (see the type's documentation).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.apply(x, mode, FusedActivation::Identity, false)
    }

    /// `relu(self.forward(x, mode))`, fused on the CPU.
    pub fn forward_relu(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.apply(x, mode, FusedActivation::Relu, false)
    }

    /// `act(self.forward(x, pass.mode))` within a network pass: always in `f32` (the statistics
    /// of a `bf16` batch would lose too much), returned in the dtype of `x`. On the CPU the
    /// activation runs in the batch norm's own pass each way.
    pub(crate) fn forward_pass(
        &self,
        x: &Tensor,
        pass: Pass,
        act: FusedActivation,
    ) -> Result<Tensor> {
        let dtype = x.dtype();
        let y = self.apply(
            &x.to_dtype(DType::F32)?,
            pass.mode,
            act,
            pass.constant_weights,
        )?;
        y.to_dtype(dtype)
    }

    fn apply(
        &self,
        x: &Tensor,
        mode: Mode,
        act: FusedActivation,
        constant: bool,
    ) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            return self.forward_fused(x, mode, act, constant);
        }
        let y = self.forward_composite(x, mode, constant)?;
        match act {
            FusedActivation::Identity => Ok(y),
            FusedActivation::Relu => y.relu(),
            FusedActivation::Silu => ops::silu(&y),
        }
    }

    fn check_train_batch(&self, x: &Tensor, mode: Mode) -> Result<f64> {
        let (n, _, h, w) = x.dims4()?;
        let count = (n * h * w) as f64;
        if mode.updates_running_statistics() && count < 2.0 {
            candle_core::bail!("batch norm in train mode needs more than one value per channel");
        }
        Ok(count)
    }

    /// CPU path: statistics and normalisation in a few fused passes (see `bn_cpu`).
    pub(crate) fn forward_fused(
        &self,
        x: &Tensor,
        mode: Mode,
        act: FusedActivation,
        constant: bool,
    ) -> Result<Tensor> {
        let _span = spat_kernels::profile::span("bn-forward", 0.0, || format!("{:?}", x.dims()));
        let count = self.check_train_batch(x, mode)?;
        let stats = if mode.uses_batch_statistics() {
            let stats = ops::batch_stats(x)?;
            if mode.updates_running_statistics() {
                let unbiased: Vec<f32> = stats
                    .var
                    .iter()
                    .map(|&v| (v as f64 * count / (count - 1.0)) as f32)
                    .collect();
                self.update_running(
                    &Tensor::from_slice(&stats.mean, self.channels, x.device())?,
                    &Tensor::from_vec(unbiased, self.channels, x.device())?,
                )?;
            }
            stats
        } else {
            ops::ChannelStats {
                mean: self.running_mean.as_tensor().to_vec1()?,
                var: self.running_var.as_tensor().to_vec1()?,
            }
        };
        let (weight, bias) = match constant {
            true => (
                self.weight.as_tensor().detach(),
                self.bias.as_tensor().detach(),
            ),
            false => (
                self.weight.as_tensor().clone(),
                self.bias.as_tensor().clone(),
            ),
        };
        let stats_of_x = mode.uses_batch_statistics();
        ops::batch_norm(x, &weight, &bias, &stats, BN_EPS, stats_of_x, act)
    }

    /// Moves the running estimates towards detached batch statistics (PyTorch's update rule).
    fn update_running(&self, batch_mean: &Tensor, unbiased_var: &Tensor) -> Result<()> {
        let rm = self.running_mean.as_tensor().detach();
        let rv = self.running_var.as_tensor().detach();
        self.running_mean
            .set(&(rm.affine(1.0 - BN_MOMENTUM, 0.0)? + batch_mean.affine(BN_MOMENTUM, 0.0)?)?)?;
        self.running_var
            .set(&(rv.affine(1.0 - BN_MOMENTUM, 0.0)? + unbiased_var.affine(BN_MOMENTUM, 0.0)?)?)?;
        let tracked = self.num_batches_tracked.as_tensor().detach();
        self.num_batches_tracked
            .set(&tracked.broadcast_add(&Tensor::new(1i64, tracked.device())?)?)
    }

    /// Device-independent path, written with candle operations (autograd does the backward).
    pub(crate) fn forward_composite(
        &self,
        x: &Tensor,
        mode: Mode,
        constant: bool,
    ) -> Result<Tensor> {
        let count = self.check_train_batch(x, mode)?;
        let c = self.channels;
        let param = |v: &Var| match constant {
            true => v.as_tensor().detach(),
            false => v.as_tensor().clone(),
        };
        let weight = param(&self.weight).reshape((1, c, 1, 1))?;
        let bias = param(&self.bias).reshape((1, c, 1, 1))?;
        if !mode.uses_batch_statistics() {
            let rm = self.running_mean.as_tensor().detach();
            let rv = self.running_var.as_tensor().detach();
            let scale = (weight / rv.affine(1.0, BN_EPS)?.sqrt()?.reshape((1, c, 1, 1))?)?;
            let shift = bias.sub(&rm.reshape((1, c, 1, 1))?.mul(&scale)?)?;
            return x.broadcast_mul(&scale)?.broadcast_add(&shift);
        }
        let mean = x.mean_keepdim((0, 2, 3))?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim((0, 2, 3))?;
        if mode.updates_running_statistics() {
            let unbiased = var
                .detach()
                .flatten_all()?
                .affine(count / (count - 1.0), 0.0)?;
            self.update_running(&mean.detach().flatten_all()?, &unbiased)?;
        }
        let inv_std = var.affine(1.0, BN_EPS)?.sqrt()?.recip()?;
        centred
            .broadcast_mul(&inv_std.broadcast_mul(&weight)?)?
            .broadcast_add(&bias)
    }
}

/// Global average pooling `(N, C, H, W) → (N, C)`, summed in `f32`, returned in the pass's
/// compute dtype.
pub(crate) fn global_avg_pool(x: &Tensor, pass: Pass) -> Result<Tensor> {
    x.to_dtype(DType::F32)?.mean((2, 3))?.to_dtype(pass.compute)
}

pub(crate) fn check_dims(x: &Tensor) -> Result<()> {
    if x.rank() != 4 || x.dim(1)? != 3 {
        candle_core::bail!("expected images of shape (N, 3, H, W), got {:?}", x.dims());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bn_with_stats(channels: usize) -> (VarStore, BatchNorm2d) {
        let mut store = VarStore::new(&Device::Cpu);
        let mut rng = spat_core::rng::host_rng(3, 0);
        let mut b = Builder::new(&mut store, &mut rng, false);
        let bn = BatchNorm2d::new(&mut b, "bn", channels).unwrap();
        let mut r = spat_core::rng::host_rng(4, 0);
        let dev = Device::Cpu;
        let u =
            |r: &mut HostRng, lo, hi| spat_core::rng::uniform(r, channels, lo, hi, &dev).unwrap();
        bn.weight.set(&u(&mut r, 0.5, 1.5)).unwrap();
        bn.bias.set(&u(&mut r, -0.3, 0.3)).unwrap();
        bn.running_mean.set(&u(&mut r, -0.2, 0.2)).unwrap();
        bn.running_var.set(&u(&mut r, 0.5, 2.0)).unwrap();
        (store, bn)
    }

    fn vals(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let err = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
            / scale;
        assert!(err < 2e-5, "{what}: relative error {err}");
    }

    /// The fused CPU kernel and the composite candle path agree in output, in the gradients for
    /// input, weight and bias, and in the running statistics they leave behind.
    #[test]
    fn fused_cpu_batch_norm_matches_composite_path() {
        let dev = Device::Cpu;
        // Non-contiguous input (a transposed view) exercises the copy path of the fused op.
        let base = spat_core::rng::uniform(
            &mut spat_core::rng::host_rng(5, 0),
            (3, 4, 5, 6),
            -2.0,
            3.0,
            &dev,
        )
        .unwrap();
        let x_strided = base.transpose(2, 3).unwrap();
        for mode in [Mode::Train, Mode::TrainFrozenBn, Mode::Eval] {
            for act in [
                FusedActivation::Identity,
                FusedActivation::Relu,
                FusedActivation::Silu,
            ] {
                let (sf, fused) = bn_with_stats(4);
                let (sc, comp) = bn_with_stats(4);
                let weights = spat_core::rng::uniform(
                    &mut spat_core::rng::host_rng(6, 0),
                    x_strided.dims(),
                    -1.0,
                    1.0,
                    &dev,
                )
                .unwrap();
                let run = |bn: &BatchNorm2d, fused_path: bool| {
                    let xv = Var::from_tensor(&x_strided).unwrap();
                    let y = if fused_path {
                        bn.forward_fused(xv.as_tensor(), mode, act, false).unwrap()
                    } else {
                        let y = bn.forward_composite(xv.as_tensor(), mode, false).unwrap();
                        match act {
                            FusedActivation::Identity => y,
                            FusedActivation::Relu => y.relu().unwrap(),
                            FusedActivation::Silu => y.silu().unwrap(),
                        }
                    };
                    let grads = (&y * &weights)
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .backward()
                        .unwrap();
                    let g = |t: &Tensor| vals(grads.get(t).unwrap());
                    (
                        vals(&y),
                        g(xv.as_tensor()),
                        g(bn.weight.as_tensor()),
                        g(bn.bias.as_tensor()),
                    )
                };
                let (yf, gxf, gwf, gbf) = run(&fused, true);
                let (yc, gxc, gwc, gbc) = run(&comp, false);
                let tag = format!("{mode:?} {act:?}");
                close(&yf, &yc, &format!("{tag} output"));
                close(&gxf, &gxc, &format!("{tag} input grad"));
                close(&gwf, &gwc, &format!("{tag} weight grad"));
                close(&gbf, &gbc, &format!("{tag} bias grad"));
                for name in ["bn.running_mean", "bn.running_var"] {
                    close(
                        &vals(sf.get(name).unwrap().as_tensor()),
                        &vals(sc.get(name).unwrap().as_tensor()),
                        &format!("{tag} {name}"),
                    );
                }
                let tracked = |s: &VarStore| {
                    s.get("bn.num_batches_tracked")
                        .unwrap()
                        .as_tensor()
                        .to_scalar::<i64>()
                        .unwrap()
                };
                let expected = i64::from(mode == Mode::Train);
                assert_eq!((tracked(&sf), tracked(&sc)), (expected, expected), "{tag}");
            }
        }
    }

    /// spat's CPU convolution equals candle's in output and in both gradients, for the kernel
    /// sizes, strides and paddings the networks use and for odd sizes where padding and stride
    /// leave unused border rows.
    #[test]
    fn cpu_conv_matches_candle_conv() {
        let dev = Device::Cpu;
        // (cin, cout, k, stride, h, w)
        let cases = [
            (3, 5, 3, 1, 8, 8),
            (4, 6, 3, 2, 8, 8),
            (4, 6, 3, 2, 7, 9),
            (5, 3, 1, 2, 7, 7),
            (5, 3, 1, 1, 6, 5),
            (2, 2, 3, 1, 1, 1),
            (3, 4, 3, 2, 2, 2),
            // Non-square with an odd remainder in one direction only: candle's own backward gets
            // the output padding wrong here, so only the adjoint identities below are checked.
            (3, 4, 3, 2, 2, 3),
        ];
        for (i, &(cin, cout, k, stride, h, w)) in cases.iter().enumerate() {
            let mut store = VarStore::new(&dev);
            let mut rng = spat_core::rng::host_rng(i as u64, 0);
            let mut b = Builder::new(&mut store, &mut rng, false);
            let conv =
                Conv2d::new(&mut b, "c", (cin, cout, k), stride, Init::PytorchDefault).unwrap();
            let mut r = spat_core::rng::host_rng(100 + i as u64, 0);
            let x = spat_core::rng::uniform(&mut r, (3, cin, h, w), -1.0, 1.0, &dev).unwrap();
            let run = |direct: bool| {
                let xv = Var::from_tensor(&x).unwrap();
                let y = if direct {
                    conv.forward_spat(xv.as_tensor()).unwrap()
                } else {
                    conv.forward_candle(xv.as_tensor()).unwrap()
                };
                let up = spat_core::rng::uniform(
                    &mut spat_core::rng::host_rng(7, 0),
                    y.dims(),
                    -1.0,
                    1.0,
                    &dev,
                )
                .unwrap();
                let grads = (&y * &up).unwrap().sum_all().unwrap().backward().unwrap();
                (
                    y.dims().to_vec(),
                    vals(&y),
                    vals(grads.get(xv.as_tensor()).unwrap()),
                    vals(grads.get(conv.weight.as_tensor()).unwrap()),
                )
            };
            let (sd, yd, gxd, gwd) = run(true);
            let tag = format!("case {:?}", cases[i]);
            // The convolution is linear in x and in the kernel, so with upstream gradient u:
            // <conv(x), u> = <x, dL/dx> = <kernel, dL/dkernel>.
            let up = vals(
                &spat_core::rng::uniform(
                    &mut spat_core::rng::host_rng(7, 0),
                    &sd[..],
                    -1.0,
                    1.0,
                    &dev,
                )
                .unwrap(),
            );
            let dot =
                |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum::<f64>();
            let lhs = dot(&yd, &up);
            for (what, rhs) in [
                ("input", dot(&vals(&x), &gxd)),
                ("kernel", dot(&vals(conv.weight.as_tensor()), &gwd)),
            ] {
                assert!(
                    (lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()),
                    "{tag} {what} adjoint: {lhs} vs {rhs}"
                );
            }
            if h != w && h % stride != w % stride {
                continue;
            }
            let (sc, yc, gxc, gwc) = run(false);
            assert_eq!(sd, sc, "{tag} shape");
            close(&yd, &yc, &format!("{tag} output"));
            close(&gxd, &gxc, &format!("{tag} input grad"));
            close(&gwd, &gwc, &format!("{tag} kernel grad"));
        }
    }

    #[test]
    fn train_mode_rejects_a_single_value_per_channel() {
        let (_s, bn) = bn_with_stats(2);
        let x = Tensor::ones((1, 2, 1, 1), DType::F32, &Device::Cpu).unwrap();
        assert!(bn.forward(&x, Mode::Train).is_err());
        assert!(bn.forward_composite(&x, Mode::Train, false).is_err());
        assert!(bn.forward(&x, Mode::Eval).is_ok());
    }
}
