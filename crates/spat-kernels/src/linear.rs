//! `y = x Wᵀ` for `f32` CPU tensors, image by image in a fixed order of operations.
//!
//! candle's matrix product gives an image's outputs bits that depend on how many images share
//! the product. spat's attacks differentiate parts of an evaluation-mode batch side by side
//! (`spat_attacks::attack::input_gradient`), which is exact only if an image's logits and
//! gradient do not depend on the rest of its batch; the convolutions already have that
//! property, and this product gives it to the classifier head. The head is a sliver of a
//! step's arithmetic, so plain loops are fast enough.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// `Σ_k a_k b_k` over eight interleaved partial sums added in a fixed order: vectorisable,
/// and the same bits for the same `a` and `b` whatever else is computed.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `out += s · v`.
fn axpy(out: &mut [f32], s: f32, v: &[f32]) {
    for (o, x) in out.iter_mut().zip(v) {
        *o += s * x;
    }
}

/// The product `x Wᵀ` of an `(N, F)` input and a `(C, F)` weight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowwiseLinear;

fn dims(x: &[usize], w: &[usize]) -> Result<(usize, usize, usize)> {
    match (x, w) {
        (&[n, f], &[c, fw]) if f == fw => Ok((n, f, c)),
        _ => candle_core::bail!("linear: input {x:?} does not fit weight {w:?}"),
    }
}

impl CustomOp2 for RowwiseLinear {
    fn name(&self) -> &'static str {
        "spat-cpu-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, f, c) = dims(xl.dims(), wl.dims())?;
        let x = crate::cpu::data::slice(xs, xl, "linear", "input")?;
        let w = crate::cpu::data::slice(ws, wl, "linear", "weight")?;
        let y = crate::cpu::simd::vectorized(|| {
            let mut y = Vec::with_capacity(n * c);
            for row in x.chunks_exact(f.max(1)).take(n) {
                y.extend(w.chunks_exact(f.max(1)).take(c).map(|wj| dot(row, wj)));
            }
            y.resize(n * c, 0.0);
            y
        });
        Ok((CpuStorage::F32(y), Shape::from((n, c))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, f, c) = dims(x.dims(), w.dims())?;
        let with = |t: &Tensor, f: &mut dyn FnMut(&[f32]) -> Result<Vec<f32>>| {
            crate::cpu::data::with_slice(t, "linear", |s| f(s))
        };
        let dx = if x.track_op() {
            // dx_i = Σ_j g_ij W_j, over j in order.
            let dx = with(grad, &mut |g| {
                with(w, &mut |w| {
                    Ok(crate::cpu::simd::vectorized(|| {
                        let mut dx = vec![0f32; n * f];
                        for (out, gi) in dx.chunks_exact_mut(f.max(1)).zip(g.chunks_exact(c)) {
                            for (&gij, wj) in gi.iter().zip(w.chunks_exact(f.max(1))) {
                                axpy(out, gij, wj);
                            }
                        }
                        dx
                    }))
                })
            })?;
            Some(Tensor::from_vec(dx, (n, f), x.device())?)
        } else {
            None
        };
        let dw = if w.track_op() {
            // dW_j = Σ_i g_ij x_i, over i in order.
            let dw = with(grad, &mut |g| {
                with(x, &mut |x| {
                    Ok(crate::cpu::simd::vectorized(|| {
                        let mut dw = vec![0f32; c * f];
                        for (gi, xi) in g.chunks_exact(c.max(1)).zip(x.chunks_exact(f.max(1))) {
                            for (out, &gij) in dw.chunks_exact_mut(f.max(1)).zip(gi) {
                                axpy(out, gij, xi);
                            }
                        }
                        dw
                    }))
                })
            })?;
            Some(Tensor::from_vec(dw, (c, f), w.device())?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::RowwiseLinear;

    fn close(a: &Tensor, b: &Tensor) -> f32 {
        if a.elem_count() == 0 {
            return 0.0;
        }
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn matches_candles_product_and_its_gradients() {
        let d = Device::Cpu;
        for (n, f, c) in [(5, 37, 3), (40, 64, 10), (1, 8, 1), (3, 0, 2)] {
            let x = Var::from_tensor(&Tensor::rand(-1f32, 1f32, (n, f), &d).unwrap()).unwrap();
            let w = Var::from_tensor(&Tensor::rand(-1f32, 1f32, (c, f), &d).unwrap()).unwrap();
            let g = Tensor::rand(-1f32, 1f32, (n, c), &d).unwrap();
            let ours = x
                .as_tensor()
                .apply_op2(w.as_tensor(), RowwiseLinear)
                .unwrap();
            let theirs = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
            assert!(close(&ours, &theirs) < 1e-5, "{n}x{f}x{c}");
            let go = (&ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let gt = (&theirs * &g)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for v in [&x, &w] {
                let (a, b) = (go.get(v.as_tensor()), gt.get(v.as_tensor()));
                match (a, b) {
                    (Some(a), Some(b)) => assert!(close(a, b) < 1e-5, "{n}x{f}x{c}"),
                    (a, b) => assert_eq!(a.is_some(), b.is_some(), "{n}x{f}x{c}"),
                }
            }
        }
    }

    #[test]
    fn a_rows_output_does_not_depend_on_the_other_rows() {
        let d = Device::Cpu;
        let x = Tensor::rand(-1f32, 1f32, (40, 640), &d).unwrap();
        let w = Tensor::rand(-1f32, 1f32, (10, 640), &d).unwrap();
        let whole = x.apply_op2(&w, RowwiseLinear).unwrap();
        let parts = Tensor::cat(
            &[
                x.narrow(0, 0, 32)
                    .unwrap()
                    .apply_op2(&w, RowwiseLinear)
                    .unwrap(),
                x.narrow(0, 32, 8)
                    .unwrap()
                    .apply_op2(&w, RowwiseLinear)
                    .unwrap(),
            ],
            0,
        )
        .unwrap();
        let bits = |t: &Tensor| -> Vec<u32> {
            t.flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(&whole), bits(&parts));
    }
}
