//! Outer training objectives on logits: what the optimiser minimises once the adversary has run.
//!
//! Each function follows the reference implementation named in its doc comment term by term,
//! including the small constants those implementations add inside logarithms, so that a model
//! trained here optimises the same function as the published one. Log-softmax, softmax and
//! cross-entropy are spat-attacks' ([`spat_attacks::losses`]): one implementation for attacks and
//! objectives.

use candle_core::{Tensor, D};
use spat_attacks::losses::{log_softmax, one_hot, pick, softmax};

/// Mean cross-entropy, PyTorch `F.cross_entropy(logits, y)`: the mean of spat-attacks' per-example
/// [`spat_attacks::losses::cross_entropy`].
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    spat_attacks::losses::cross_entropy(logits, labels)?.mean_all()
}

/// TRADES' robust term (yaodongyu/TRADES `trades.py`): `KLDivLoss(size_average=False)` of
/// `log_softmax(adv)` against `softmax(clean)`, i.e. `sum_i KL(p(x_i) || p(x̂_i))`, divided by
/// the batch size. Gradients flow through both arguments, as in the reference.
pub fn trades_kl(logits_clean: &Tensor, logits_adv: &Tensor) -> candle_core::Result<Tensor> {
    let n = logits_clean.dim(0)? as f64;
    let log_p = log_softmax(logits_clean)?;
    let log_q = log_softmax(logits_adv)?;
    let kl = log_p.exp()?.mul(&(log_p - log_q)?)?;
    kl.sum_all()? / n
}

/// TRADES objective: `CE(p(x), y) + beta * trades_kl(x, x̂)`.
pub fn trades_loss(
    logits_clean: &Tensor,
    logits_adv: &Tensor,
    labels: &Tensor,
    beta: f64,
) -> candle_core::Result<Tensor> {
    let natural = cross_entropy(logits_clean, labels)?;
    let robust = trades_kl(logits_clean, logits_adv)?;
    natural + (robust * beta)?
}

/// For each row, the class of highest probability other than the label (MART's `new_y`).
fn best_wrong_class(probs: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    // Push the true class below every probability (all are >= 0), then take the arg-max. The mask
    // is built on the device, so a training step does not copy the labels back to the host.
    let onehot = one_hot(labels, probs.dim(1)?, probs.dtype())?;
    (probs.detach() - onehot.affine(2.0, 0.0)?)?.argmax(D::Minus1)
}

/// MART objective (YisenWang/MART `mart.py`, `mart_loss`):
///
/// * `BCE = CE(logits_adv, y) + mean_i[-log(1.0001 - p̂_{i,y'} + 1e-12)]`, `y'` the most likely
///   wrong class under the adversarial probabilities `p̂`;
/// * `robust = (1/N) sum_i [sum_k p_k (log p_k - log(p̂_k + 1e-12))] * (1.0000001 - p_{i,y})`,
///   `p` the clean probabilities (gradients flow through every factor, as in the reference);
/// * `loss = BCE + lambda * robust`.
pub fn mart_loss(
    logits_clean: &Tensor,
    logits_adv: &Tensor,
    labels: &Tensor,
    lambda: f64,
) -> candle_core::Result<Tensor> {
    let n = logits_clean.dim(0)? as f64;
    let adv_probs = softmax(logits_adv)?;
    let wrong = best_wrong_class(&adv_probs, labels)?;
    let margin = pick(&((1.0001 - &adv_probs)? + 1e-12)?.log()?, &wrong)?
        .mean_all()?
        .neg()?;
    let bce = (cross_entropy(logits_adv, labels)? + margin)?;

    // `log p` from log-softmax, not `log(softmax)`: PyTorch's `KLDivLoss` treats `0 * log 0` as 0,
    // and a probability that underflows to 0 in f32 would otherwise give `0 * -inf = NaN`.
    let log_nat = log_softmax(logits_clean)?;
    let nat_probs = log_nat.exp()?;
    let true_probs = pick(&nat_probs, labels)?;
    let log_adv = (&adv_probs + 1e-12)?.log()?;
    let kl_rows = nat_probs.mul(&(log_nat - log_adv)?)?.sum(D::Minus1)?;
    let robust = (kl_rows.mul(&(1.0000001 - true_probs)?)?.sum_all()? / n)?;
    bce + (robust * lambda)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    // Two examples, three classes. Expected values were computed independently with numpy from
    // the reference formulas (float64):
    //
    //   import numpy as np
    //   zc = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 1.5]]); za = np.array([[0.5, 1.0, -0.5], [1.0, -0.3, 0.4]])
    //   y = np.array([0, 2]); sm = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
    //   p, q = sm(zc), sm(za); ce = lambda z: -np.mean(np.log(sm(z))[range(2), y])
    //   kl = (p * (np.log(p) - np.log(q))).sum() / 2                       # 0.3915775
    //   trades(beta=6) = ce(zc) + 6 * kl                                    # 0.3297241 + 6 * 0.3915775 = 2.6791890
    //   yw = [1, 0]  (best wrong class of q per row)
    //   bce = ce(za) - np.mean(np.log(1.0001 - q[range(2), yw] + 1e-12))
    //   rob = ((p * (np.log(p) - np.log(q + 1e-12))).sum(1) * (1.0000001 - p[range(2), y])).sum() / 2
    //   mart(lambda=5) = bce + 5 * rob   # 1.9452600 + 5 * rob = 2.4761732 (the reference code run
    //   in torch on these tensors gives the same two numbers)
    fn batch() -> (Tensor, Tensor, Tensor) {
        let d = Device::Cpu;
        let zc = Tensor::new(&[[2.0f32, 0.5, -1.0], [0.1, 0.2, 1.5]], &d).unwrap();
        let za = Tensor::new(&[[0.5f32, 1.0, -0.5], [1.0, -0.3, 0.4]], &d).unwrap();
        let y = Tensor::new(&[0u32, 2], &d).unwrap();
        (zc, za, y)
    }

    fn scalar(t: Tensor) -> f64 {
        t.to_scalar::<f32>().unwrap() as f64
    }

    #[test]
    fn cross_entropy_matches_numpy() {
        let (zc, za, y) = batch();
        assert!((scalar(cross_entropy(&zc, &y).unwrap()) - 0.329_724_1).abs() < 1e-6);
        assert!((scalar(cross_entropy(&za, &y).unwrap()) - 1.151_852_5).abs() < 1e-6);
    }

    #[test]
    fn trades_matches_numpy() {
        let (zc, za, y) = batch();
        assert!((scalar(trades_kl(&zc, &za).unwrap()) - 0.391_577_5).abs() < 1e-6);
        let v = scalar(trades_loss(&zc, &za, &y, 6.0).unwrap());
        assert!((v - 2.679_189_0).abs() < 1e-5, "{v}");
    }

    #[test]
    fn trades_beta_zero_is_clean_cross_entropy() {
        let (zc, za, y) = batch();
        let a = trades_loss(&zc, &za, &y, 0.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let b = cross_entropy(&zc, &y).unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn mart_matches_numpy() {
        let (zc, za, y) = batch();
        let v = scalar(mart_loss(&zc, &za, &y, 5.0).unwrap());
        assert!((v - MART_EXPECTED).abs() < 1e-5, "{v}");
        let v0 = scalar(mart_loss(&zc, &za, &y, 0.0).unwrap());
        assert!((v0 - MART_BCE_EXPECTED).abs() < 1e-5, "{v0}");
    }

    #[test]
    fn underflowing_probabilities_stay_finite() {
        // exp(-400) is 0 in f32: `log(softmax)` would be -inf and `0 * -inf` NaN; PyTorch's
        // KLDivLoss defines that term as 0, and so must we.
        let d = Device::Cpu;
        let z = Tensor::new(&[[200.0f32, 0.0, -200.0]], &d).unwrap();
        let y = Tensor::new(&[0u32], &d).unwrap();
        let mart = scalar(mart_loss(&z, &z, &y, 5.0).unwrap());
        let trades = scalar(trades_loss(&z, &z, &y, 6.0).unwrap());
        assert!(mart.is_finite() && trades.is_finite(), "{mart} {trades}");
        // Clean == adversarial: KL is 0 and CE is ~0, so TRADES is ~0; MART keeps its BCE margin
        // term -log(1.0001 - p_wrong + 1e-12) with p_wrong ~ 0, i.e. ~ -log(1.0001).
        assert!(trades.abs() < 1e-6, "{trades}");
        assert!((mart - -(1.0001f64.ln())).abs() < 1e-6, "{mart}");
    }

    const MART_BCE_EXPECTED: f64 = 1.945_260_0;
    const MART_EXPECTED: f64 = 2.476_173_2;
}
