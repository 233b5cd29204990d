//! `silu(x) = x·sigmoid(x)` (Swish) for `f32` CPU tensors in one parallel pass each way: the
//! activation of the DeepMind-layout networks.
//!
//! candle's `silu` runs single-threaded, and its backward is five more tensor operations
//! (a sigmoid, a subtraction, two products and an accumulation); here each direction is one
//! pass over the elements on rayon's threads. The forward is PyTorch's CPU formula
//! `x / (1 + exp(−x))`, the backward its `silu_backward`: `g·s·(1 + x·(1 − s))` with
//! `s = 1 / (1 + exp(−x))`. `exp` is [`exp`] below, which vectorises (libm's `expf` is a call
//! per element; PyTorch also uses a vectorised exponential, SLEEF's), so results may differ from
//! either in the last bit.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `x·sigmoid(x)`: one pass on an f32 CPU tensor, candle's `silu` elsewhere.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    if !(x.device().is_cpu() && x.dtype() == candle_core::DType::F32) {
        return x.silu();
    }
    let x = match x.is_contiguous() {
        true => x.clone(),
        false => x.contiguous()?,
    };
    x.apply_op1(Silu)
}

#[derive(Debug, Clone, Copy)]
struct Silu;

/// `e^x` in f32 within 2 ulp, branch-free so that loops over it vectorise (Cephes' `expf`:
/// `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2`, a degree-6 polynomial for `e^r`, `2^n` built in the
/// exponent bits). Arguments are clamped to `[−87.3, 88.3]`, where `e^x` is a normal float;
/// NaN stays NaN.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in a part exact in few bits and the rest, so that n·LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.3);
    // Round to nearest by adding and removing 1.5·2²³ (no `floor`, a libm call on baseline x86-64).
    const ROUND: f32 = 12_582_912.0;
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5; // Cephes: 5.0000001e-1, which is 0.5 in f32
    let e_r = p * r * r + r + 1.0;
    // 2ⁿ from `shifted`'s low mantissa bits, which hold n + 0x40_0000 (|n| ≤ 127 ≪ 2²²): integer
    // lanes, where `n as i32` (a saturating cast) made LLVM convert one lane at a time.
    const SHIFTED_ZERO: u32 = 0x4B40_0000;
    let biased = shifted.to_bits().wrapping_sub(SHIFTED_ZERO - 127);
    e_r * f32::from_bits(biased << 23)
}

/// `x·sigmoid(x)`, as PyTorch's CPU kernel writes it.
#[inline(always)]
pub(crate) fn value(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// The upstream gradient `g` through `silu` at `x`: PyTorch's `silu_backward`.
#[inline(always)]
pub(crate) fn gradient(x: f32, g: f32) -> f32 {
    let s = 1.0 / (1.0 + exp(-x));
    g * s * (1.0 + x * (1.0 - s))
}

/// `out[i] = f(a[i], b[i])`, vectorised, on rayon's threads.
fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Result<Vec<f32>> {
    crate::cpu::elementwise::zip_map(a, b, CHUNK, f)
}

impl CustomOp1 for Silu {
    fn name(&self) -> &'static str {
        "spat-silu"
    }

    fn cpu_fwd(&self, x: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = crate::cpu::data::slice(x, l, "silu", "input")?;
        let out = zip_map(
            x,
            x,
            #[inline(always)]
            |v, _| value(v),
        )?;
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = crate::cpu::data::with_slice(arg, "silu", |x| {
            crate::cpu::data::with_slice(grad, "silu", |g| {
                if x.len() != g.len() {
                    candle_core::bail!("silu: {} inputs, {} gradients", x.len(), g.len());
                }
                zip_map(x, g, gradient)
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor, Var};

    /// Values and gradients against the closed form in f64: x·σ(x) and σ(x)·(1 + x·(1 − σ(x))).
    #[test]
    fn value_and_gradient_match_the_closed_form() {
        let dev = Device::Cpu;
        let n = 3 * 40_000; // several parallel chunks
        let xs: Vec<f32> = (0..n).map(|i| (i as f32 / n as f32 - 0.5) * 40.0).collect();
        let us: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let x = Var::from_vec(xs.clone(), (3, 200, 200), &dev).unwrap();
        // A transposed view: the kernel takes a contiguous copy.
        let xt = x.as_tensor().transpose(1, 2).unwrap();
        let u = Tensor::from_vec(us.clone(), (3, 200, 200), &dev)
            .unwrap()
            .transpose(1, 2)
            .unwrap();
        let y = super::silu(&xt).unwrap();
        let g = (&y * &u).unwrap().sum_all().unwrap().backward().unwrap();
        let y = y.transpose(1, 2).unwrap().flatten_all().unwrap();
        let y = y.to_vec1::<f32>().unwrap();
        let g = g.get(x.as_tensor()).unwrap().flatten_all().unwrap();
        let g = g.to_vec1::<f32>().unwrap();
        for i in 0..n {
            let (v, w) = (xs[i] as f64, us[i] as f64);
            let s = 1.0 / (1.0 + (-v).exp());
            let (want_y, want_g) = (v * s, w * s * (1.0 + v * (1.0 - s)));
            assert!(
                (y[i] as f64 - want_y).abs() <= 1e-6 * (1.0 + want_y.abs()),
                "y({v})"
            );
            assert!(
                (g[i] as f64 - want_g).abs() <= 1e-6 * (1.0 + want_g.abs()),
                "g({v})"
            );
        }
    }

    /// Values and input gradients against candle's own `silu` and its autograd, which this op
    /// replaces, on a 4-D activation of several parallel chunks.
    #[test]
    fn value_and_gradient_match_candles_silu() {
        let dev = Device::Cpu;
        let dims = (4, 8, 40, 40);
        let n = 4 * 8 * 40 * 40;
        let xs: Vec<f32> = (0..n)
            .map(|i| ((i * 7877) % 4001) as f32 / 200.0 - 10.0)
            .collect();
        let us: Vec<f32> = (0..n)
            .map(|i| ((i * 613) % 997) as f32 / 498.5 - 1.0)
            .collect();
        let u = Tensor::from_vec(us, dims, &dev).unwrap();
        let run = |f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>| {
            let x = Var::from_vec(xs.clone(), dims, &dev).unwrap();
            let y = f(x.as_tensor()).unwrap();
            let g = (&y * &u).unwrap().sum_all().unwrap().backward().unwrap();
            let g = g.get(x.as_tensor()).unwrap().flatten_all().unwrap();
            let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (y, g.to_vec1::<f32>().unwrap())
        };
        let (y, g) = run(&|x| super::silu(x));
        let (want_y, want_g) = run(&|x| x.silu());
        let close = |a: f32, b: f32| (a - b).abs() <= 4.0 * f32::EPSILON * (1.0 + b.abs());
        for i in 0..n {
            assert!(
                close(y[i], want_y[i]),
                "y({}) {} vs {}",
                xs[i],
                y[i],
                want_y[i]
            );
            assert!(
                close(g[i], want_g[i]),
                "g({}) {} vs {}",
                xs[i],
                g[i],
                want_g[i]
            );
        }
    }

    /// The input gradient against central finite differences of the op's own forward.
    #[test]
    fn gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let xs: Vec<f32> = (0..201).map(|i| i as f32 / 10.0 - 10.0).collect();
        let x = Var::from_vec(xs.clone(), xs.len(), &dev).unwrap();
        let y = super::silu(x.as_tensor()).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let h = 1e-2f32;
        let shifted = |d: f32| {
            let v: Vec<f32> = xs.iter().map(|x| x + d).collect();
            let t = Tensor::from_vec(v, xs.len(), &dev).unwrap();
            super::silu(&t).unwrap().to_vec1::<f32>().unwrap()
        };
        let (up, down) = (shifted(h), shifted(-h));
        for i in 0..xs.len() {
            let fd = (up[i] as f64 - down[i] as f64) / (2.0 * h as f64);
            // Truncation h²/6·|f'''| < 2e-5; f32 rounding of x ± h and of f, over 2h.
            let tol = 1e-4 + 1e-5 * (1.0 + xs[i].abs() as f64);
            assert!(
                (g[i] as f64 - fd).abs() <= tol,
                "x = {}: {} vs {fd}",
                xs[i],
                g[i]
            );
        }
    }

    /// The exponential against f64's on a dense grid of its range.
    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0f64;
        for i in 0..=1_000_000 {
            let x = -87.0 + 175.0 * i as f32 / 1e6;
            let (got, want) = (super::exp(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(
            worst < 2.0 * f32::EPSILON as f64,
            "relative error {worst:e}"
        );
        assert!(super::exp(f32::NAN).is_nan());
        assert!(super::exp(-1e4) > 0.0 && super::exp(1e4).is_finite());
    }

    #[test]
    fn other_dtypes_take_candles_path() {
        let x = Tensor::new(&[-2f64, 0.0, 3.0], &Device::Cpu).unwrap();
        let y = super::silu(&x).unwrap();
        assert_eq!(y.dtype(), DType::F64);
        let want = x.silu().unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(y.to_vec1::<f64>().unwrap(), want);
    }
}
