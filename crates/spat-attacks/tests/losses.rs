//! Losses and their input gradients against closed forms and finite differences.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use spat_attacks::losses::{
    cross_entropy, cw_margin, kl_from_clean, label_smoothed_cross_entropy, softmax,
};
use spat_attacks::AttackLoss;

use common::f64s as v1;

fn logits() -> Tensor {
    Tensor::new(&[[2.0f64, -1.0, 0.5], [0.1, 0.2, 3.0]], &Device::Cpu).unwrap()
}

fn labels() -> Tensor {
    Tensor::new(&[0u32, 1], &Device::Cpu).unwrap()
}

fn closed_softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn assert_close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

#[test]
fn cross_entropy_and_label_smoothing_match_closed_form() {
    let z = [[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]];
    let y = [0usize, 1];
    let alpha = 0.3;
    let ce: Vec<f64> = (0..2).map(|i| -closed_softmax(&z[i])[y[i]].ln()).collect();
    let ls: Vec<f64> = (0..2)
        .map(|i| {
            let p = closed_softmax(&z[i]);
            (0..3)
                .map(|k| {
                    if k == y[i] {
                        -(1.0 - alpha) * p[k].ln()
                    } else {
                        -(alpha / 2.0) * p[k].ln()
                    }
                })
                .sum()
        })
        .collect();
    assert_close(
        &v1(&cross_entropy(&logits(), &labels()).unwrap()),
        &ce,
        1e-12,
    );
    assert_close(
        &v1(&label_smoothed_cross_entropy(&logits(), &labels(), alpha).unwrap()),
        &ls,
        1e-12,
    );
}

#[test]
fn label_smoothing_at_zero_is_cross_entropy_bit_for_bit() {
    let z = Var::new(&[[2.0f32, -1.0, 0.5], [0.1, 0.2, 3.0]], &Device::Cpu).unwrap();
    let ce = cross_entropy(z.as_tensor(), &labels()).unwrap();
    let ls = label_smoothed_cross_entropy(z.as_tensor(), &labels(), 0.0).unwrap();
    assert_eq!(v1(&ce), v1(&ls));
    let g1 = ce.sum_all().unwrap().backward().unwrap();
    let g2 = ls.sum_all().unwrap().backward().unwrap();
    assert_eq!(
        v1(g1.get(z.as_tensor()).unwrap()),
        v1(g2.get(z.as_tensor()).unwrap())
    );
}

#[test]
fn gradients_match_closed_forms() {
    // d CE / dz = p − onehot; d LS / dz = p − y_ls; d KL(q‖p) / dz = p − q; CW: −(e_y − e_best) inside the hinge.
    let z = Var::from_tensor(&logits()).unwrap();
    let zs = [[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]];
    let p: Vec<Vec<f64>> = zs.iter().map(|r| closed_softmax(r)).collect();
    let alpha = 0.3;
    let grad = |loss: Tensor| {
        v1(loss
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
            .get(z.as_tensor())
            .unwrap())
    };

    let mut expect_ce = vec![];
    let mut expect_ls = vec![];
    for (i, y) in [0usize, 1].into_iter().enumerate() {
        for (k, pk) in p[i].iter().enumerate() {
            let t = if k == y { 1.0 } else { 0.0 };
            let t_ls = if k == y { 1.0 - alpha } else { alpha / 2.0 };
            expect_ce.push(pk - t);
            expect_ls.push(pk - t_ls);
        }
    }
    assert_close(
        &grad(cross_entropy(z.as_tensor(), &labels()).unwrap()),
        &expect_ce,
        1e-12,
    );
    assert_close(
        &grad(label_smoothed_cross_entropy(z.as_tensor(), &labels(), alpha).unwrap()),
        &expect_ls,
        1e-12,
    );

    let q = Tensor::new(&[[0.2f64, 0.5, 0.3], [0.6, 0.3, 0.1]], &Device::Cpu).unwrap();
    let qv = v1(&q);
    let expect_kl: Vec<f64> = (0..6).map(|j| p[j / 3][j % 3] - qv[j]).collect();
    assert_close(
        &grad(kl_from_clean(z.as_tensor(), &q).unwrap()),
        &expect_kl,
        1e-12,
    );
    let kl_value: f64 = (0..6)
        .map(|j| qv[j] * (qv[j].ln() - p[j / 3][j % 3].ln()))
        .sum();
    assert_close(
        &[v1(&kl_from_clean(&logits(), &q).unwrap())
            .iter()
            .sum::<f64>()],
        &[kl_value],
        1e-12,
    );

    // CW with κ = 50: margins are small, so the hinge is active: loss = −(z_y − z_best + κ).
    // Example 0: y = 0, best wrong = class 2; example 1: y = 1, best wrong = class 2.
    let cw = cw_margin(z.as_tensor(), &labels(), 50.0).unwrap();
    assert_close(&v1(&cw), &[-(2.0 - 0.5 + 50.0), -(0.2 - 3.0 + 50.0)], 1e-12);
    assert_close(&grad(cw), &[-1.0, 0.0, 1.0, 0.0, -1.0, 1.0], 1e-12);
    // κ = 0 and a correct, confident example: hinge inactive, zero loss.
    assert_close(
        &v1(&cw_margin(&logits(), &labels(), 0.0).unwrap()),
        &[-1.5, 0.0],
        1e-12,
    );
}

/// A tiny random network in f64: tanh(x W1ᵀ) W2ᵀ on flattened inputs.
fn tiny_net(x: &Tensor, w1: &Tensor, w2: &Tensor) -> Tensor {
    x.flatten_from(1)
        .unwrap()
        .matmul(&w1.t().unwrap())
        .unwrap()
        .tanh()
        .unwrap()
        .matmul(&w2.t().unwrap())
        .unwrap()
}

#[test]
fn input_gradients_match_central_differences() {
    let dev = Device::Cpu;
    let mut rng = spat_core::rng::host_rng(3, 0);
    let x = spat_core::rng::uniform(&mut rng, (2, 3, 2, 2), 0.0, 1.0, &dev)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let w1 = spat_core::rng::normal(&mut rng, (6, 12), 1.0, &dev)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let w2 = spat_core::rng::normal(&mut rng, (4, 6), 1.0, &dev)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let y = Tensor::new(&[1u32, 3], &dev).unwrap();
    let clean = softmax(&tiny_net(&x, &w1, &w2)).unwrap();
    let losses = [
        AttackLoss::CrossEntropy,
        AttackLoss::LabelSmoothed { alpha: 0.3 },
        AttackLoss::Kl,
        AttackLoss::CwMargin { kappa: 50.0 },
    ];
    // Evaluate away from the clean point, or the KL gradient is exactly zero.
    let x0 = (&x
        + spat_core::rng::uniform(&mut rng, x.shape(), -0.03, 0.03, &dev)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap())
    .unwrap();
    for loss in losses {
        let f = |x: &Tensor| {
            spat_attacks::losses::summed(&loss, &tiny_net(x, &w1, &w2), &y, Some(&clean)).unwrap()
        };
        let xv = Var::from_tensor(&x0).unwrap();
        let g = v1(f(xv.as_tensor())
            .backward()
            .unwrap()
            .get(xv.as_tensor())
            .unwrap());
        let base = v1(&x0);
        let h = 1e-6;
        for i in 0..base.len() {
            let mut p = base.clone();
            p[i] += h;
            let mut m = base.clone();
            m[i] -= h;
            let fp = v1(&f(&Tensor::from_vec(p, x0.shape(), &dev).unwrap()))[0];
            let fm = v1(&f(&Tensor::from_vec(m, x0.shape(), &dev).unwrap()))[0];
            let fd = (fp - fm) / (2.0 * h);
            let scale = g.iter().fold(0f64, |a, b| a.max(b.abs()));
            assert!(
                (fd - g[i]).abs() / scale < 1e-3,
                "{loss:?} element {i}: autograd {} fd {fd}",
                g[i]
            );
        }
    }
}

#[test]
fn losses_stay_finite_on_extreme_logits() {
    // A naive log(softmax) gives -inf (and NaN gradients) here; log-sum-exp with the max removed
    // gives the exact values: CE = 2000 for the first example, 0 for the second.
    let z = Var::new(
        &[[-1000f32, 0.0, 1000.0], [1000.0, 0.0, -1000.0]],
        &Device::Cpu,
    )
    .unwrap();
    let y = Tensor::new(&[0u32, 0], &Device::Cpu).unwrap();
    let ce = cross_entropy(z.as_tensor(), &y).unwrap();
    assert_eq!(v1(&ce), [2000.0, 0.0]);
    let ls = label_smoothed_cross_entropy(z.as_tensor(), &y, 0.5).unwrap();
    // Example 1: −0.5·log p_0 − 0.25·(log p_1 + log p_2) = 0 + 0.25·(1000 + 2000).
    assert_close(&v1(&ls)[1..], &[750.0], 1e-6);
    let clean =
        softmax(&Tensor::new(&[[0f32, 0.0, 0.0], [1.0, 0.0, 0.0]], &Device::Cpu).unwrap()).unwrap();
    for loss in [
        ce,
        ls,
        kl_from_clean(z.as_tensor(), &clean).unwrap(),
        cw_margin(z.as_tensor(), &y, 50.0).unwrap(),
    ] {
        let total = loss.sum_all().unwrap();
        assert!(v1(&total)[0].is_finite());
        let g = v1(total.backward().unwrap().get(z.as_tensor()).unwrap());
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    }
}
