//! Seeded host randomness.
//!
//! candle cannot seed its CPU generator and its CUDA generator differs from the CPU one, so every
//! random draw in spat (shuffles, crops, flips, attack starts, weight initialisation) is made on the
//! host from a ChaCha stream and then copied to the device. A `(seed, stream)` pair names one
//! independent stream, which lets a resumed run re-create the generator of any epoch or step from
//! counters alone.

use candle_core::{Device, Shape, Tensor};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

pub use rand_chacha::ChaCha8Rng as HostRng;

/// Well-separated stream ids, so that two uses of one seed never share a stream.
pub mod streams {
    /// Weight initialisation of a network built from a seed.
    pub const INIT: u64 = 1;
    /// The training set's shuffle (plus the epoch).
    pub const SHUFFLE: u64 = 2 << 32;
    /// Random crops and flips (plus the epoch).
    pub const AUGMENT: u64 = 3 << 32;
    /// The training adversary's random starts (plus the global step).
    pub const ATTACK: u64 = 4 << 32;
    /// A seeded random subset of a data set (`ImageSet::sample`).
    pub const SUBSET: u64 = 5 << 32;
    /// Evaluation attacks' random starts (plus the batch index).
    pub const EVAL_ATTACK: u64 = 6 << 32;
    /// The validation split held out of a training set.
    pub const VALIDATION: u64 = 7 << 32;
}

/// The generator for `(seed, stream)`.
pub fn host_rng(seed: u64, stream: u64) -> HostRng {
    let mut rng = HostRng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// `f32` tensor with elements uniform in `[lo, hi)`.
pub fn uniform(
    rng: &mut impl Rng,
    shape: impl Into<Shape>,
    lo: f32,
    hi: f32,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let shape = shape.into();
    let data: Vec<f32> = (0..shape.elem_count())
        .map(|_| lo + (hi - lo) * rng.random::<f32>())
        .collect();
    Tensor::from_vec(data, shape, device)
}

/// `f32` tensor with elements drawn from `N(0, std^2)`.
pub fn normal(
    rng: &mut impl Rng,
    shape: impl Into<Shape>,
    std: f32,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let shape = shape.into();
    let data: Vec<f32> = (0..shape.elem_count())
        .map(|_| {
            let z: f32 = StandardNormal.sample(rng);
            std * z
        })
        .collect();
    Tensor::from_vec(data, shape, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_same_draws() {
        let a = uniform(&mut host_rng(7, 3), (4, 5), -1.0, 1.0, &Device::Cpu).unwrap();
        let b = uniform(&mut host_rng(7, 3), (4, 5), -1.0, 1.0, &Device::Cpu).unwrap();
        let c = uniform(&mut host_rng(7, 4), (4, 5), -1.0, 1.0, &Device::Cpu).unwrap();
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a, b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_ne!(a, c.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
    }

    #[test]
    fn normal_has_requested_spread() {
        let t = normal(&mut host_rng(1, 0), 20_000, 2.0, &Device::Cpu).unwrap();
        let v = t.to_vec1::<f32>().unwrap();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "std {}", var.sqrt());
    }
}
