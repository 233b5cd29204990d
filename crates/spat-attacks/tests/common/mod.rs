//! Helpers the attack tests share: a small tanh MLP and tensors as host vectors.
#![allow(dead_code)] // each test binary uses its own subset

use candle_core::{DType, Device, Tensor};
use spat_core::rng::host_rng;
use spat_core::{Classifier, Mode};

/// tanh(x W1ᵀ) W2ᵀ on flattened images, in the dtype of its weights.
pub struct Mlp {
    pub w1: Tensor,
    pub w2: Tensor,
}

impl Classifier for Mlp {
    fn logits(&self, x: &Tensor, _mode: Mode) -> candle_core::Result<Tensor> {
        x.flatten_from(1)?
            .matmul(&self.w1.t()?)?
            .tanh()?
            .matmul(&self.w2.t()?)
    }
}

/// An [`Mlp`] with 16 hidden units, first-layer weights `N(0, w1_std²)` and second-layer `N(0, 1)`.
pub fn random_mlp(seed: u64, inputs: usize, classes: usize, w1_std: f32) -> Mlp {
    let mut rng = host_rng(seed, 99);
    Mlp {
        w1: spat_core::rng::normal(&mut rng, (16, inputs), w1_std, &Device::Cpu).unwrap(),
        w2: spat_core::rng::normal(&mut rng, (classes, 16), 1.0, &Device::Cpu).unwrap(),
    }
}

/// All elements of `t`, flattened, as `f32`.
pub fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// All elements of `t`, flattened, as `f64`.
pub fn f64s(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}
