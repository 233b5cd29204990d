//! Per-example bookkeeping of the AutoAttack attacks: which rows of a batch to keep, replace or
//! attack further. Row copies go through `where_cond` and `index_select`, never through
//! arithmetic, so a kept or replaced example is bit-identical to its source.

use candle_core::{DType, Tensor, Var};
use spat_core::{Classifier, Mode};

use crate::Result;

/// A `(N, 1, …, 1)` tensor of per-example values in `like`'s dtype, for broadcasting over `like`.
pub(crate) fn per_example(values: &[f64], like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![1usize; like.rank()];
    shape[0] = values.len();
    Ok(Tensor::from_vec(values.to_vec(), shape, like.device())?.to_dtype(like.dtype())?)
}

/// Row `n` of `on_true` where `mask[n]`, else row `n` of `on_false`.
pub(crate) fn select(mask: &[bool], on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
    if mask.iter().all(|&m| !m) {
        return Ok(on_false.clone());
    }
    if mask.iter().all(|&m| m) {
        return Ok(on_true.clone());
    }
    let mut shape = vec![1usize; on_true.rank()];
    shape[0] = mask.len();
    let bytes: Vec<u8> = mask.iter().map(|&m| u8::from(m)).collect();
    let m = Tensor::from_vec(bytes, shape, on_true.device())?
        .broadcast_as(on_true.shape())?
        .contiguous()?;
    Ok(m.where_cond(on_true, on_false)?)
}

fn index_tensor(idx: &[usize], like: &Tensor) -> Result<Tensor> {
    let idx: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
    Ok(Tensor::new(idx.as_slice(), like.device())?)
}

/// The rows `idx` of `t`, in that order.
pub(crate) fn gather(t: &Tensor, idx: &[usize]) -> Result<Tensor> {
    if idx.len() == t.dim(0)? && idx.iter().enumerate().all(|(i, &j)| i == j) {
        return Ok(t.clone());
    }
    Ok(t.index_select(&index_tensor(idx, t)?, 0)?)
}

/// `base` with row `positions[j]` replaced by row `j` of `rows`.
pub(crate) fn scatter(base: &Tensor, positions: &[usize], rows: &Tensor) -> Result<Tensor> {
    if positions.is_empty() {
        return Ok(base.clone());
    }
    let n = base.dim(0)?;
    let mut source: Vec<usize> = (0..n).collect();
    for (j, &p) in positions.iter().enumerate() {
        source[p] = n + j;
    }
    let both = Tensor::cat(&[base, &rows.to_dtype(base.dtype())?], 0)?;
    Ok(both.index_select(&index_tensor(&source, base)?, 0)?)
}

/// Indices `n` with `flags[n]`.
pub(crate) fn indices(flags: &[bool]) -> Vec<usize> {
    flags
        .iter()
        .enumerate()
        .filter_map(|(i, &f)| f.then_some(i))
        .collect()
}

/// A `(N,)` tensor on the host as `f64`.
pub(crate) fn host_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

pub(crate) use crate::attack::{argmax, correct_in as correct, labels as host_labels};

/// Logits, per-example objective and input gradient of the summed objective at `x`.
pub(crate) struct Evaluation {
    pub logits: Tensor,
    pub objective: Tensor,
    pub grad: Tensor,
}

/// Evaluates `objective(logits)` (per example, `(N,)`) at `x` and its input gradient; the
/// gradient store is dropped here, so nothing of the pass outlives the call.
pub(crate) fn objective_and_grad(
    model: &dyn Classifier,
    x: &Tensor,
    mode: Mode,
    objective: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<Evaluation> {
    let xv = Var::from_tensor(&x.detach())?;
    let logits = model.logits_wrt_input(xv.as_tensor(), mode)?;
    let per_example = objective(&logits)?;
    let grads = per_example.sum_all()?.backward()?;
    let grad = match grads.get(xv.as_tensor()) {
        Some(g) => g.detach(),
        None => x.zeros_like()?,
    };
    Ok(Evaluation {
        logits: logits.detach(),
        objective: per_example.detach(),
        grad,
    })
}

/// `max_i |t_i|` over each example's elements, as a `(N,)` host vector.
pub(crate) fn linf_norms(t: &Tensor) -> Result<Vec<f64>> {
    host_f64(&t.flatten_from(1)?.abs()?.max(1)?)
}

/// `‖t‖₂` of each example's elements, as a `(N,)` host vector.
pub(crate) fn l2_norms(t: &Tensor) -> Result<Vec<f64>> {
    host_f64(&crate::attack::l2_norms(t)?.sqrt()?)
}

/// The restart loop every AutoAttack attack shares: `rounds` times, runs `attack(xs, ys, round)`
/// on the examples of `(x, y)` still flagged in `robust` (a round with none left does nothing);
/// `attack` returns its adversarial batch and which of its examples it fooled, and each fooled
/// example takes its adversarial point and loses its flag. Returns the batch and the flags.
pub(crate) fn on_survivors(
    x: &Tensor,
    y: &Tensor,
    mut robust: Vec<bool>,
    rounds: usize,
    mut attack: impl FnMut(&Tensor, &Tensor, usize) -> Result<(Tensor, Vec<bool>)>,
) -> Result<(Tensor, Vec<bool>)> {
    let mut adv = x.clone();
    for round in 0..rounds {
        let idx = indices(&robust);
        if idx.is_empty() {
            continue;
        }
        let (adv_curr, fooled) = attack(&gather(x, &idx)?, &gather(y, &idx)?, round)?;
        let fooled = indices(&fooled);
        let positions: Vec<usize> = fooled.iter().map(|&j| idx[j]).collect();
        adv = scatter(&adv, &positions, &gather(&adv_curr, &fooled)?)?;
        for p in positions {
            robust[p] = false;
        }
    }
    Ok((adv, robust))
}

/// Which examples of `adv` `model` misclassifies.
pub(crate) fn misclassified(
    model: &dyn Classifier,
    adv: &Tensor,
    y: &Tensor,
    mode: Mode,
) -> Result<Vec<bool>> {
    Ok(correct(model, adv, y, mode)?
        .into_iter()
        .map(|c| !c)
        .collect())
}
