//! Inner-maximisation losses on logits. Every function takes `(N, K)` logits and `(N,)` `u32`
//! labels and returns per-example losses of shape `(N,)`; attacks sum them (the sign of a summed
//! loss's gradient is that of each example's own loss, as in the reference implementations).

use candle_core::{DType, Result, Tensor, D};

/// Numerically stable `log_softmax` over the class dimension.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let lse = logits.log_sum_exp(D::Minus1)?.unsqueeze(1)?;
    logits.broadcast_sub(&lse)
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

fn label_log_prob(log_probs: &Tensor, labels: &Tensor) -> Result<Tensor> {
    log_probs
        .gather(&labels.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?
        .squeeze(1)
}

/// `−log p_y`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    label_log_prob(&log_softmax(logits)?, labels)?.neg()
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
    let true_term = label_log_prob(&log_probs, labels)?;
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
