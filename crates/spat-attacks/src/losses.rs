//! Losses on logits: spat's one implementation of log-softmax, softmax and cross-entropy, which
//! the training objectives of spat-train build on, and the inner-maximisation losses of the
//! attacks. Every loss takes `(N, K)` logits and `(N,)` `u32` labels and returns per-example
//! losses of shape `(N,)`; attacks sum them (the sign of a summed loss's gradient is that of each
//! example's own loss, as in the reference implementations), objectives average them.

use candle_core::{DType, Result, Tensor, D};
use spat_spec::AttackLoss;

/// `log_softmax` over the class dimension: `(z − m) − log Σ exp(z − m)` with `m` the row maximum.
///
/// The shift is detached: log-softmax is invariant to it, so its gradient is zero, and detaching
/// keeps the graph smaller (PyTorch's kernel also treats it as a constant).
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&log_sum)
}

/// Softmax over the class dimension.
pub fn softmax(logits: &Tensor) -> Result<Tensor> {
    log_softmax(logits)?.exp()
}

/// One-hot encoding of `labels` with `num_classes` columns, in `dtype`.
pub fn one_hot(labels: &Tensor, num_classes: usize, dtype: DType) -> Result<Tensor> {
    let n = labels.dim(0)?;
    let idx = labels.to_dtype(DType::U32)?.unsqueeze(1)?;
    let ones = Tensor::ones((n, 1), dtype, labels.device())?;
    Tensor::zeros((n, num_classes), dtype, labels.device())?.scatter_add(&idx, &ones, 1)
}

/// `values[i, labels[i]]` for every row, shape `(N,)`.
pub fn pick(values: &Tensor, labels: &Tensor) -> Result<Tensor> {
    values
        .gather(&labels.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?
        .squeeze(1)
}

/// `−log p_y` per example; `.mean_all()` of it is PyTorch's `F.cross_entropy(logits, y)`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    pick(&log_softmax(logits)?, labels)?.neg()
}

/// Label-smoothed cross-entropy (thesis eq. 4.1–4.2): `−Σ_k y^LS_k log p_k` with
/// `y^LS_y = 1 − α` and `y^LS_k = α / (K − 1)` for every other class.
///
/// Written as `−(1 − α)·log p_y − α/(K−1)·(Σ_k log p_k − log p_y)`, so that at `α = 0` every term but
/// the first is an exact zero and the loss and its gradient equal [`cross_entropy`] bit for bit.
pub fn label_smoothed_cross_entropy(
    logits: &Tensor,
    labels: &Tensor,
    alpha: f64,
) -> Result<Tensor> {
    let k = logits.dim(1)?;
    if k < 2 {
        candle_core::bail!("label smoothing needs at least two classes, got {k}");
    }
    let log_probs = log_softmax(logits)?;
    let true_term = pick(&log_probs, labels)?;
    let others = (log_probs.sum(1)? - &true_term)?;
    (true_term.affine(1.0 - alpha, 0.0)? + others.affine(alpha / (k - 1) as f64, 0.0)?)?.neg()
}

/// `KL(p_clean ‖ p) = Σ_k p_clean,k (log p_clean,k − log p_k)` per example, where `clean_probs`
/// is the (detached) clean prediction: TRADES' `KLDivLoss(log_softmax(adv), softmax(clean))`.
pub fn kl_from_clean(logits: &Tensor, clean_probs: &Tensor) -> Result<Tensor> {
    // xlogy convention: a zero clean probability contributes zero.
    let log_clean = clean_probs.clamp(1e-30f32, 1f32)?.log()?;
    let log_clean = log_clean.to_dtype(logits.dtype())?;
    let clean_probs = clean_probs.to_dtype(logits.dtype())?;
    (clean_probs * (log_clean - log_softmax(logits)?)?)?.sum(1)
}

/// The CW margin loss of the MART/TRADES evaluation code (`cwloss`):
/// `−max(z_y − max_{k≠y} z_k + κ, 0)`; maximising it pushes the best wrong logit above the true one
/// by up to `κ`. As in the reference, the true class is masked out with `−10000` before the max.
pub fn cw_margin(logits: &Tensor, labels: &Tensor, kappa: f64) -> Result<Tensor> {
    let k = logits.dim(1)?;
    let onehot = one_hot(labels, k, logits.dtype())?;
    let real = (&onehot * logits)?.sum(1)?;
    let other = ((onehot.affine(-1.0, 1.0)? * logits)? - onehot.affine(10000.0, 0.0)?)?.max(1)?;
    (real - other)?.affine(1.0, kappa)?.relu()?.neg()
}

/// Summed `loss` of a batch: what an attack maximises. `clean_probs` is needed by
/// [`AttackLoss::Kl`] only.
pub fn summed(
    loss: &AttackLoss,
    logits: &Tensor,
    labels: &Tensor,
    clean_probs: Option<&Tensor>,
) -> crate::Result<Tensor> {
    let per_example = match *loss {
        AttackLoss::CrossEntropy => cross_entropy(logits, labels)?,
        AttackLoss::LabelSmoothed { alpha } => {
            if !(0.0..=1.0).contains(&alpha) {
                return Err(crate::Error::InvalidArgument(format!(
                    "label-smoothing alpha must lie in [0, 1], got {alpha}"
                )));
            }
            label_smoothed_cross_entropy(logits, labels, alpha)?
        }
        AttackLoss::Kl => {
            let clean = clean_probs.ok_or_else(|| {
                crate::Error::InvalidArgument("the KL loss needs the clean prediction".into())
            })?;
            kl_from_clean(logits, clean)?
        }
        AttackLoss::CwMargin { kappa } => cw_margin(logits, labels, kappa)?,
    };
    Ok(per_example.sum_all()?)
}

/// Logits sorted in decreasing order along the class dimension, differentiable (a gather).
fn sorted_descending(logits: &Tensor) -> Result<(Tensor, Tensor)> {
    let order = logits.contiguous()?.arg_sort_last_dim(false)?;
    Ok((logits.gather(&order, 1)?, order))
}

/// Column `j` of a `(N, K)` tensor as `(N,)`.
fn column(t: &Tensor, j: usize) -> Result<Tensor> {
    t.narrow(1, j, 1)?.squeeze(1)
}

/// The Difference of Logits Ratio loss of Croce & Hein (2020), eq. 5, as `dlr_loss` of the
/// reference AutoAttack code: `−(z_y − max_{k≠y} z_k) / (z_π1 − z_π3 + 10⁻¹²)`, where `z_π1 ≥ z_π2 ≥
/// z_π3` are the largest logits. It is invariant to shifting and rescaling the logits, which is
/// what makes it robust to the gradient masking that saturated cross-entropy suffers from.
/// Needs at least three classes.
pub fn dlr(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let k = logits.dim(1)?;
    if k < 3 {
        candle_core::bail!("the DLR loss needs at least three classes, got {k}");
    }
    let (sorted, order) = sorted_descending(logits)?;
    let labels = labels.to_dtype(DType::U32)?;
    let z_y = pick(logits, &labels)?;
    // Whether the true class is the largest logit: then the best other class is the second.
    let top_is_label = column(&order, 0)?.eq(&labels)?.to_dtype(logits.dtype())?;
    let (z1, z2, z3) = (
        column(&sorted, 0)?,
        column(&sorted, 1)?,
        column(&sorted, 2)?,
    );
    let best_other = ((z2 * &top_is_label)? + (&z1 * top_is_label.affine(-1.0, 1.0)?)?)?;
    let scale = (z1 - z3)?.affine(1.0, 1e-12)?;
    (z_y - best_other)?.div(&scale)?.neg()
}

/// The targeted DLR loss of APGD-T (Croce & Hein 2020, eq. 6; `dlr_loss_targeted` of the reference):
/// `−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 10⁻¹²)` for target labels `t`. Needs at least four
/// classes.
pub fn dlr_targeted(logits: &Tensor, labels: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let k = logits.dim(1)?;
    if k < 4 {
        candle_core::bail!("the targeted DLR loss needs at least four classes, got {k}");
    }
    let (sorted, _) = sorted_descending(logits)?;
    let z_y = pick(logits, labels)?;
    let z_t = pick(logits, targets)?;
    let (z1, z3, z4) = (
        column(&sorted, 0)?,
        column(&sorted, 2)?,
        column(&sorted, 3)?,
    );
    let scale = (z1 - (z3 + z4)?.affine(0.5, 0.0)?)?.affine(1.0, 1e-12)?;
    (z_y - z_t)?.div(&scale)?.neg()
}
