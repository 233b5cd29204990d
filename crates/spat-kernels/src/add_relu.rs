//! `relu(a + b)` for `f32` CPU tensors in one pass each way: a residual block's sum and
//! activation.
//!
//! As candle operations the sum and the ReLU are two passes forward, and the ReLU's backward
//! (zeros, a comparison, a conversion, a product and an accumulation) about six more; here the
//! forward is one pass and the backward one, which hands the same gradient to both summands.
//! The gradient follows PyTorch's threshold backward: zero where the output is zero.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// `relu(a + b)`: one fused pass on f32 CPU tensors of the same shape, candle's operations
/// elsewhere.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let fused = a.device().is_cpu()
        && b.device().is_cpu()
        && a.dtype() == candle_core::DType::F32
        && b.dtype() == candle_core::DType::F32
        && a.shape() == b.shape();
    if !fused {
        return (a + b)?.relu();
    }
    let contiguous = |t: &Tensor| match t.is_contiguous() {
        true => Ok(t.clone()),
        false => t.contiguous(),
    };
    contiguous(a)?.apply_op2(&contiguous(b)?, AddRelu)
}

#[derive(Debug, Clone, Copy)]
struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "spat-add-relu"
    }

    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let a = crate::cpu::data::slice(a, al, "add_relu", "first summand")?;
        let b = crate::cpu::data::slice(b, bl, "add_relu", "second summand")?;
        if a.len() != b.len() {
            candle_core::bail!("add_relu: summands of {} and {} elements", a.len(), b.len());
        }
        let out = crate::cpu::elementwise::zip_map(a, b, CHUNK, |a, b| (a + b).max(0.0))?;
        Ok((CpuStorage::F32(out), al.shape().clone()))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let masked = crate::cpu::data::with_slice(res, "add_relu", |y| {
            crate::cpu::data::with_slice(grad, "add_relu", |g| {
                let masked = |y: f32, g: f32| if y > 0.0 { g } else { 0.0 };
                crate::cpu::elementwise::zip_map(y, g, CHUNK, masked)
            })
        })?;
        let masked = Tensor::from_vec(masked, res.shape(), res.device())?;
        Ok((Some(masked.clone()), Some(masked)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn value_and_gradients_match_candles_sum_and_relu() {
        let dev = Device::Cpu;
        let shape = (3, 5, 7, 9);
        let n = 3 * 5 * 7 * 9;
        let a = Var::from_vec(values(n, 1), shape, &dev).unwrap();
        let b = Var::from_vec(values(n, 2), shape, &dev).unwrap();
        let u = Tensor::from_vec(values(n, 3), shape, &dev).unwrap();
        let fused = super::add_relu(a.as_tensor(), b.as_tensor()).unwrap();
        let plain = (a.as_tensor() + b.as_tensor()).unwrap().relu().unwrap();
        let bits = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(bits(&fused), bits(&plain));
        let positive = bits(&fused).iter().filter(|v| **v > 0.0).count();
        assert!(
            positive > n / 4 && positive < 3 * n / 4,
            "{positive} of {n} positive"
        );
        assert!(bits(&(a.as_tensor() + b.as_tensor()).unwrap())
            .iter()
            .all(|v| *v != 0.0));
        let gf = (&fused * &u)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gp = (&plain * &u)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&a, &b] {
            let (f, p) = (gf.get(v).unwrap(), gp.get(v).unwrap());
            assert_eq!(bits(f), bits(p));
        }
    }

    #[test]
    fn other_shapes_and_dtypes_take_candles_path() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[-1f64, 2.0]], &dev).unwrap();
        let b = Tensor::new(&[[0.5f64, -3.0]], &dev).unwrap();
        let y = super::add_relu(&a, &b).unwrap();
        assert_eq!(y.to_vec2::<f64>().unwrap(), vec![vec![0.0, 0.0]]);
        let row = Tensor::new(&[1f32, -1.0], &dev).unwrap();
        let m = Tensor::new(&[[1f32, 2.0], [-3.0, 0.5]], &dev).unwrap();
        assert!(
            super::add_relu(&m, &row).is_err(),
            "candle's sum does not broadcast"
        );
    }
}
