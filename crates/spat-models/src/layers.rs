//! Building blocks: convolution, linear and a three-mode batch normalisation, all holding
//! [`Var`]s registered in a [`VarStore`] under PyTorch names.

use candle_core::{DType, Device, Tensor, Var, D};
type Result<T, E = candle_core::Error> = std::result::Result<T, E>;
use rand::Rng;
use spat_core::rng::HostRng;
use spat_core::{Mode, VarStore};

use crate::Error;

/// How a layer's weights are drawn at construction.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// `N(0, 2 / (k·k·out_channels))`: the WideResNet reference (Kaiming normal, fan-out).
    KaimingNormalFanOut,
    /// `U(-1/√fan_in, 1/√fan_in)`: PyTorch's default for `Conv2d`/`Linear` (`kaiming_uniform_(a=√5)`).
    PytorchDefault,
}

pub(crate) struct Builder<'a> {
    pub store: &'a mut VarStore,
    pub rng: &'a mut HostRng,
    pub prefix: Vec<String>,
    pub seed: u64,
}

impl Builder<'_> {
    pub fn rng_seed(&self) -> u64 {
        self.seed
    }

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

    fn parameter(&mut self, leaf: &str, init: Tensor) -> Result<Var, Error> {
        let name = self.path(leaf);
        Ok(self.store.add_parameter(name, init)?)
    }

    fn buffer(&mut self, leaf: &str, init: Tensor) -> Result<Var, Error> {
        let name = self.path(leaf);
        Ok(self.store.add_buffer(name, init)?)
    }
}

/// 2-D convolution without bias (every reference network here uses `bias=False`).
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Var,
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
        let w = match init {
            Init::KaimingNormalFanOut => {
                let std = (2.0 / (k * k * cout) as f64).sqrt() as f32;
                let dev = b.device();
                spat_core::rng::normal(b.rng, &shape[..], std, &dev)?
            }
            Init::PytorchDefault => b.uniform(&shape, 1.0 / ((cin * k * k) as f32).sqrt())?,
        };
        let weight = b.scope(name, |b| b.parameter("weight", w))?;
        Ok(Self {
            weight,
            stride,
            padding: k / 2,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(self.weight.as_tensor(), self.padding, self.stride, 1, 1)
    }

    /// Multiply-accumulates for one image whose input is `h × w`; returns the output size too.
    pub fn macs(&self, (h, w): (usize, usize)) -> (u64, (usize, usize)) {
        let (cout, cin, k, _) = self.weight.dims4().expect("conv weight is 4-D");
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
}

impl Linear {
    pub(crate) fn new(
        b: &mut Builder<'_>,
        name: &str,
        (fin, fout): (usize, usize),
        zero_bias: bool,
    ) -> Result<Self, Error> {
        let bound = 1.0 / (fin as f32).sqrt();
        let w = b.uniform(&[fout, fin], bound)?;
        let bias = if zero_bias {
            Tensor::zeros(fout, DType::F32, &b.device())?
        } else {
            b.uniform(&[fout], bound)?
        };
        b.scope(name, |b| {
            Ok(Self {
                weight: b.parameter("weight", w)?,
                bias: b.parameter("bias", bias)?,
            })
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight.as_tensor().t()?)?
            .broadcast_add(self.bias.as_tensor())
    }

    pub fn macs(&self) -> u64 {
        self.weight.elem_count() as u64
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
        let dev = b.device();
        b.scope(name, |b| {
            Ok(Self {
                weight: b.parameter("weight", Tensor::ones(channels, DType::F32, &dev)?)?,
                bias: b.parameter("bias", Tensor::zeros(channels, DType::F32, &dev)?)?,
                running_mean: b
                    .buffer("running_mean", Tensor::zeros(channels, DType::F32, &dev)?)?,
                running_var: b.buffer("running_var", Tensor::ones(channels, DType::F32, &dev)?)?,
                num_batches_tracked: b.buffer("num_batches_tracked", Tensor::new(0i64, &dev)?)?,
                channels,
            })
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let c = self.channels;
        let (n, _, h, w) = x.dims4()?;
        let weight = self.weight.as_tensor().reshape((1, c, 1, 1))?;
        let bias = self.bias.as_tensor().reshape((1, c, 1, 1))?;
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
            let count = (n * h * w) as f64;
            if count < 2.0 {
                candle_core::bail!(
                    "batch norm in train mode needs more than one value per channel"
                );
            }
            let batch_mean = mean.detach().flatten_all()?;
            let unbiased = var
                .detach()
                .flatten_all()?
                .affine(count / (count - 1.0), 0.0)?;
            let rm = self.running_mean.as_tensor().detach();
            let rv = self.running_var.as_tensor().detach();
            self.running_mean.set(
                &(rm.affine(1.0 - BN_MOMENTUM, 0.0)? + batch_mean.affine(BN_MOMENTUM, 0.0)?)?,
            )?;
            self.running_var
                .set(&(rv.affine(1.0 - BN_MOMENTUM, 0.0)? + unbiased.affine(BN_MOMENTUM, 0.0)?)?)?;
            let one = Tensor::new(1i64, x.device())?;
            let tracked = self.num_batches_tracked.as_tensor().detach();
            self.num_batches_tracked
                .set(&tracked.broadcast_add(&one)?)?;
        }
        let inv_std = var.affine(1.0, BN_EPS)?.sqrt()?.recip()?;
        centred
            .broadcast_mul(&inv_std.broadcast_mul(&weight)?)?
            .broadcast_add(&bias)
    }
}

/// Global average pooling `(N, C, H, W) → (N, C)`.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    x.mean((2, 3))
}

/// Inverted dropout, active only in training modes; the mask comes from the host RNG of the layer.
pub fn dropout(x: &Tensor, p: f64, rng: &std::sync::Mutex<HostRng>) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let mut rng = rng
        .lock()
        .map_err(|_| candle_core::Error::Msg("dropout rng poisoned".into()))?;
    let keep: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if rng.random::<f64>() < p {
                0.0
            } else {
                (1.0 / (1.0 - p)) as f32
            }
        })
        .collect();
    x.mul(&Tensor::from_vec(keep, x.shape(), x.device())?)
}

pub(crate) fn check_dims(x: &Tensor) -> Result<()> {
    if x.rank() != 4 || x.dim(1)? != 3 {
        candle_core::bail!("expected images of shape (N, 3, H, W), got {:?}", x.dims());
    }
    let _ = x.dim(D::Minus1)?;
    Ok(())
}
