//! Input normalisation as a classifier wrapper.
//!
//! Many published models expect `(x − mean) / std` per channel rather than pixels in `[0, 1]`.
//! Attacks must still work in pixel space (the ε-ball and the `[0, 1]` box are defined there), so
//! the normalisation belongs inside the classifier: [`Normalized`] wraps any [`Classifier`] and
//! normalises on the way in, and autograd carries the input gradient back through it to pixels.
//! It lives in `spat-core` so that a user of `spat-attacks` alone and the CLI (which builds
//! `spat-models` networks) reach the same type without a new dependency edge.

use candle_core::{DType, Device, Tensor};

use crate::{Classifier, Mode, Network, VarStore};

/// Per-channel mean and standard deviation of an input normalisation.
///
/// One type for both sources: `--normalize` on the command line and the `mu`/`sigma` buffers a
/// RobustBench checkpoint carries ([`crate::checkpoint`] takes them out of the weights). Values are
/// `f32`, the dtype the model sees them in.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// Per-channel mean, subtracted first (one value: the same for every channel).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation, divided by after the mean is subtracted; every value > 0.
    pub std: Vec<f32>,
}

impl Normalization {
    /// CIFAR-10 training-set statistics, as RobustBench's models that normalise use them
    /// (`robustbench/model_zoo/architectures/utils_architectures.py`: mean (0.4914, 0.4822,
    /// 0.4465), std (0.2471, 0.2435, 0.2616)). Some repositories use std (0.2023, 0.1994, 0.2010)
    /// instead (a long-standing slip in kuangliu/pytorch-cifar); pass that as an explicit
    /// normalisation for such a model.
    pub fn cifar10() -> Self {
        Self::of_dataset(spat_spec::Dataset::Cifar10)
    }

    /// CIFAR-100 training-set statistics (RobustBench: mean (0.5071, 0.4865, 0.4409), std (0.2673,
    /// 0.2564, 0.2762)).
    pub fn cifar100() -> Self {
        Self::of_dataset(spat_spec::Dataset::Cifar100)
    }

    /// A data set's statistics ([`spat_spec::Dataset::channel_statistics`]).
    pub fn of_dataset(dataset: spat_spec::Dataset) -> Self {
        let (mean, std) = dataset.channel_statistics();
        Self::from_channels(mean, std)
    }

    /// Three per-channel values of each.
    pub fn from_channels(mean: [f32; 3], std: [f32; 3]) -> Self {
        Self {
            mean: mean.to_vec(),
            std: std.to_vec(),
        }
    }

    /// A normalisation from explicit per-channel values; one value of each broadcasts to every
    /// channel. Rejects mismatched lengths, non-finite values and standard deviations `<= 0`.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> crate::Result<Self> {
        let bad = |msg: String| Err(crate::Error::Msg(format!("input normalisation: {msg}")));
        if mean.is_empty() || std.is_empty() {
            return bad("mean and std need at least one value each".into());
        }
        if mean.len() != std.len() && mean.len() != 1 && std.len() != 1 {
            return bad(format!(
                "{} mean values but {} standard deviations",
                mean.len(),
                std.len()
            ));
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return bad(format!("mean {m} is not finite"));
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return bad(format!("standard deviation {s} must be finite and > 0"));
        }
        Ok(Self { mean, std })
    }

    /// Parses `cifar10`, `cifar100`, or explicit values: `MEAN,STD` as `2k` comma-separated
    /// numbers (the first `k` are the means, the last `k` the standard deviations, so `0.5,0.25` and
    /// `0.49,0.48,0.45,0.25,0.24,0.26` both work), or `MEANS/STDS` as `0.49,0.48,0.45/0.25,0.24,0.26`.
    pub fn parse(text: &str) -> crate::Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "cifar10" | "cifar-10" => return Ok(Self::cifar10()),
            "cifar100" | "cifar-100" => return Ok(Self::cifar100()),
            _ => {}
        }
        let bad = || {
            crate::Error::Msg(format!(
                "input normalisation `{text}`: expected cifar10, cifar100, MEAN,STD values such as \
                 0.49,0.48,0.45,0.25,0.24,0.26 (means, then standard deviations) or MEANS/STDS"
            ))
        };
        let list = |t: &str| -> crate::Result<Vec<f32>> {
            t.split(',')
                .map(|v| v.trim().parse::<f32>().map_err(|_| bad()))
                .collect()
        };
        match text.split_once('/') {
            Some((m, s)) => Self::new(list(m)?, list(s)?),
            None => {
                let mut values = list(text)?;
                if values.len() % 2 != 0 {
                    return Err(bad());
                }
                let std = values.split_off(values.len() / 2);
                Self::new(values, std)
            }
        }
    }

    /// Number of channels this normalisation is for; `None` if both sides broadcast (one value).
    pub fn channels(&self) -> Option<usize> {
        match (self.mean.len(), self.std.len()) {
            (1, 1) => None,
            (m, 1) => Some(m),
            (_, s) => Some(s),
        }
    }

    fn per_channel(values: &[f32], channels: usize) -> Vec<f32> {
        if values.len() == 1 {
            vec![values[0]; channels]
        } else {
            values.to_vec()
        }
    }
}

/// A classifier that normalises its `[0, 1]` input per channel before `inner` sees it:
/// `inner((x − mean) / std)`, computed as PyTorch's `(x - mean) / std` (a subtraction and a
/// division, not a multiplication by `1/std`).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use spat_core::{Classifier, Mode, Normalization, Normalized};
///
/// struct Sum;
/// impl Classifier for Sum {
///     fn logits(&self, x: &Tensor, _mode: Mode) -> candle_core::Result<Tensor> {
///         x.flatten_from(1)?.sum_keepdim(1)
///     }
/// }
/// let model = Normalized::new(Sum, &Normalization::new(vec![0.5], vec![0.25])?, &Device::Cpu)?;
/// let x = Tensor::full(1f32, (1, 3, 2, 2), &Device::Cpu)?;
/// let z = model.logits(&x, Mode::Eval)?.flatten_all()?.to_vec1::<f32>()?;
/// assert_eq!(z, vec![24.0]); // 12 pixels of (1 − 0.5) / 0.25
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Normalized<C> {
    inner: C,
    normalization: Normalization,
    /// `(1, C, 1, 1)` in `f32`, cast to the input's dtype per call.
    mean: Tensor,
    std: Tensor,
}

impl<C> Normalized<C> {
    /// Wraps `inner` so that it sees `(x − mean) / std`; the mean and deviation are put on
    /// `device` once. An error if the tensors cannot be made there.
    pub fn new(inner: C, normalization: &Normalization, device: &Device) -> crate::Result<Self> {
        let channels = normalization.channels().unwrap_or(1);
        let to_tensor = |values: &[f32]| -> crate::Result<Tensor> {
            let v = Normalization::per_channel(values, channels);
            Ok(Tensor::from_vec(v, (1, channels, 1, 1), device)?)
        };
        Ok(Self {
            mean: to_tensor(&normalization.mean)?,
            std: to_tensor(&normalization.std)?,
            normalization: normalization.clone(),
            inner,
        })
    }

    /// The wrapped classifier.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The normalisation applied before `inner`.
    pub fn normalization(&self) -> &Normalization {
        &self.normalization
    }

    /// `(x − mean) / std` per channel.
    pub fn normalize(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if x.rank() < 2 {
            candle_core::bail!(
                "input normalisation needs (N, C, ...) input, got shape {:?}",
                x.dims()
            );
        }
        let c = x.dim(1)?;
        let expected = self.mean.dim(1)?;
        if expected != 1 && c != expected {
            candle_core::bail!(
                "input normalisation has {expected} channels, the input has {c} (shape {:?})",
                x.dims()
            );
        }
        let shape: Vec<usize> = (0..x.rank())
            .map(|d| if d == 1 { expected } else { 1 })
            .collect();
        let dtype = x.dtype();
        let cast = |t: &Tensor| -> candle_core::Result<Tensor> {
            let t = if dtype == DType::F32 {
                t.clone()
            } else {
                t.to_dtype(dtype)?
            };
            t.reshape(shape.as_slice())
        };
        x.broadcast_sub(&cast(&self.mean)?)?
            .broadcast_div(&cast(&self.std)?)
    }
}

impl<C: Classifier> Classifier for Normalized<C> {
    fn logits(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        self.inner.logits(&self.normalize(x)?, mode)
    }

    fn logits_wrt_input(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        self.inner.logits_wrt_input(&self.normalize(x)?, mode)
    }
}

/// Training a normalised network trains the wrapped network's variables; the normalisation has
/// none (it is configuration, not a parameter).
impl<N: Network> Network for Normalized<N> {
    fn var_store(&self) -> &VarStore {
        self.inner.var_store()
    }

    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Identity;
    impl Classifier for Identity {
        fn logits(&self, x: &Tensor, _mode: Mode) -> candle_core::Result<Tensor> {
            x.flatten_from(1)
        }
    }

    #[test]
    fn normalises_each_channel() {
        let dev = Device::Cpu;
        let norm = Normalization::new(vec![0.1, 0.2, 0.3], vec![0.5, 0.25, 2.0]).unwrap();
        let model = Normalized::new(Identity, &norm, &dev).unwrap();
        let x = Tensor::from_vec(vec![0.6f32, 0.7, 0.8], (1, 3, 1, 1), &dev).unwrap();
        let z = model.logits(&x, Mode::Eval).unwrap().flatten_all().unwrap();
        let z = z.to_vec1::<f32>().unwrap();
        let want = [
            (0.6f32 - 0.1) / 0.5,
            (0.7f32 - 0.2) / 0.25,
            (0.8f32 - 0.3) / 2.0,
        ];
        assert_eq!(z, want);
    }

    #[test]
    fn gradient_reaches_pixels_scaled_by_one_over_std() {
        let dev = Device::Cpu;
        let norm = Normalization::new(vec![0.5], vec![0.25]).unwrap();
        let model = Normalized::new(Identity, &norm, &dev).unwrap();
        let x = candle_core::Var::from_tensor(&Tensor::full(0.3f32, (2, 3, 2, 2), &dev).unwrap())
            .unwrap();
        let z = model.logits_wrt_input(x.as_tensor(), Mode::Eval).unwrap();
        let g = z.sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().flatten_all().unwrap();
        assert!(g.to_vec1::<f32>().unwrap().iter().all(|&v| v == 4.0));
    }

    #[test]
    fn parses_presets_and_lists() {
        assert_eq!(
            Normalization::parse("CIFAR10").unwrap(),
            Normalization::cifar10()
        );
        let n = Normalization::parse("0.5,0.4,0.3/0.2,0.2,0.1").unwrap();
        assert_eq!(n.mean, vec![0.5, 0.4, 0.3]);
        assert_eq!(n.std, vec![0.2, 0.2, 0.1]);
        assert_eq!(Normalization::parse("0.5,0.4,0.3,0.2,0.2,0.1").unwrap(), n);
        assert_eq!(Normalization::parse("0.5/0.25").unwrap().channels(), None);
        assert_eq!(Normalization::parse("0.5,0.25").unwrap().std, vec![0.25]);
        for bad in [
            "",
            "imagenet7",
            "0.5,0.5/0.2,0.2,0.2",
            "0.5/0",
            "0.5/-1",
            "a/b",
            "0.5",
            "1,2,3",
        ] {
            assert!(Normalization::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn wrong_channel_count_is_an_error() {
        let dev = Device::Cpu;
        let model = Normalized::new(Identity, &Normalization::cifar10(), &dev).unwrap();
        let x = Tensor::zeros((1, 1, 2, 2), DType::F32, &dev).unwrap();
        let err = model.logits(&x, Mode::Eval).unwrap_err().to_string();
        assert!(err.contains("3 channels"), "{err}");
    }
}
