//! The L2 threat model against its references, in float64 from the fixtures written by
//! `scripts/golden/autoattack_l2.py`: torchattacks' `PGDL2` (its random start and iterations), FGM
//! in closed form, and fra31/auto-attack's L2 APGD-CE and APGD-T (per-iteration losses, step sizes
//! and checkpoints from a saved start), `projection_l2`, FAB-T and Square Attack (its random draws
//! replayed); every attack's L2 form stays in the ball and the box; and AutoAttack-L2's accuracies
//! within a point of the reference's on an MLP adversarially trained with PGD-L2.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use spat_attacks::autoattack::Part;
use spat_attacks::{
    l2_start, projection_l2, Apgd, ApgdConfig, ApgdLoss, ApgdTargeted, Attack, AttackLoss,
    AttackSpec, Fab, Fgsm, Norm, Pgd, RandomStart, Square,
};
use spat_core::rng::host_rng;
use spat_core::{Classifier, Mode};

use common::{
    assert_close, assert_run_matches, f64s, labels, max_abs_diff, mostly_correct_labels, usizes,
    Mlp, Replay,
};

fn fixture() -> HashMap<String, Tensor> {
    common::load_fixture("autoattack_l2_replay.safetensors")
}

fn scalar(t: &HashMap<String, Tensor>, key: &str) -> f64 {
    f64s(&t[key])[0]
}

fn mlp(t: &HashMap<String, Tensor>, prefix: &str) -> Mlp {
    Mlp {
        w1: t[&format!("{prefix}w1")].clone(),
        w2: t[&format!("{prefix}w2")].clone(),
    }
}

/// `‖a − b‖₂` of each example.
fn l2_distances(a: &Tensor, b: &Tensor) -> Vec<f64> {
    let d = (a - b).unwrap().to_dtype(DType::F64).unwrap();
    d.sqr()
        .unwrap()
        .flatten_from(1)
        .unwrap()
        .sum(1)
        .unwrap()
        .sqrt()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

#[test]
fn pgd_l2_replays_torchattacks() {
    let t = common::load_fixture("pgd_l2.safetensors");
    let model = mlp(&t, "");
    let (x, y) = (&t["x"], &labels(&t["y"]));
    let eps = scalar(&t, "eps");
    let start = l2_start(x, &t["gaussian"], &t["fractions"], eps, true).unwrap();
    let d = max_abs_diff(&start, &t["start"]);
    assert!(d <= 1e-15, "the random start differs by {d}");
    let pgd = Pgd {
        eps,
        step_size: scalar(&t, "alpha"),
        steps: usizes(&t["steps"])[0],
        loss: AttackLoss::CrossEntropy,
        random_start: RandomStart::None,
        mode: Mode::Eval,
        norm: Norm::L2,
    };
    // torchattacks differentiates the batch's mean loss, so the 10⁻¹⁰ it adds to each gradient's
    // norm weighs as 6·10⁻¹⁰ against spat's summed loss: the iterates differ by ~10⁻¹¹.
    for (from, key) in [(&start, "adv"), (x, "adv_no_start")] {
        let adv = pgd.perturb_from(&model, x, y, from).unwrap();
        let d = max_abs_diff(&adv, &t[key]);
        assert!(d <= 1e-10, "{key}: differs from torchattacks by {d}");
        assert!(l2_distances(&adv, x).iter().all(|&n| n <= eps + 1e-12));
    }
    // The start lies in the ball: a radius uniform in [0, ε] along a normal direction.
    assert!(l2_distances(&start, x).iter().all(|&n| n <= eps + 1e-12));
}

/// z = W x on flattened images.
struct Linear {
    w: Tensor,
}

impl Classifier for Linear {
    fn logits(&self, x: &Tensor, _mode: Mode) -> candle_core::Result<Tensor> {
        x.flatten_from(1)?.matmul(&self.w.t()?)
    }
}

#[test]
fn fgm_is_one_normalised_gradient_step_of_length_eps() {
    let dev = Device::Cpu;
    let mut rng = host_rng(3, 0);
    let w = spat_core::rng::normal(&mut rng, (10, 48), 0.5, &dev)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let x = spat_core::rng::uniform(&mut rng, (5, 3, 4, 4), 0.3, 0.7, &dev)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let y = Tensor::new(&[1u32, 4, 0, 9, 6], &dev).unwrap();
    let model = Linear { w: w.clone() };
    for eps in [0.2, 1.5] {
        let adv = Fgsm::fgm(eps)
            .perturb(&model, &x, &y, &mut host_rng(0, 0))
            .unwrap();
        // ∂CE/∂x = Wᵀ (softmax(Wx) − e_y), in closed form on the host.
        let (wv, xv, yv) = (
            w.to_vec2::<f64>().unwrap(),
            x.flatten_from(1).unwrap().to_vec2::<f64>().unwrap(),
            y.to_vec1::<u32>().unwrap(),
        );
        for (n, (xi, &yi)) in xv.iter().zip(&yv).enumerate() {
            let z: Vec<f64> = wv
                .iter()
                .map(|r| r.iter().zip(xi).map(|(a, b)| a * b).sum())
                .collect();
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
            let total: f64 = e.iter().sum();
            let g: Vec<f64> = (0..48)
                .map(|i| {
                    (0..10)
                        .map(|k| wv[k][i] * (e[k] / total - f64::from(u8::from(k as u32 == yi))))
                        .sum()
                })
                .collect();
            let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
            let want: Vec<f64> = (0..48)
                .map(|i| (xi[i] + eps * g[i] / norm).clamp(0.0, 1.0))
                .collect();
            let got = f64s(&adv.narrow(0, n, 1).unwrap());
            assert_close(
                &format!("FGM at ε = {eps}, example {n}"),
                &got,
                &want,
                1e-12,
            );
        }
        let gaps = l2_distances(&adv, &x);
        if eps < 1.0 {
            // No pixel reaches 0 or 1: the step has length ε exactly.
            assert!(gaps.iter().all(|g| (g - eps).abs() < 1e-12), "{gaps:?}");
        } else {
            assert!(gaps.iter().all(|&g| g <= eps + 1e-12), "{gaps:?}");
        }
    }
    // A model blind to its input has no gradient: FGM leaves the image as it is.
    let blind = Linear {
        w: Tensor::zeros((10, 48), DType::F64, &dev).unwrap(),
    };
    let adv = Fgsm::fgm(0.5)
        .perturb(&blind, &x, &y, &mut host_rng(0, 0))
        .unwrap();
    assert_eq!(f64s(&adv), f64s(&x));
}

#[test]
fn apgd_l2_replays_the_reference_run() {
    let t = fixture();
    let model = mlp(&t, "");
    let y = labels(&t["y"]);
    let steps = usizes(&t["apgd_steps"])[0];
    let config = ApgdConfig {
        norm: Norm::L2,
        steps,
        ..ApgdConfig::autoattack(scalar(&t, "eps"))
    };
    // APGD-DLR's L2 path is APGD-CE's with the DLR loss (replayed in L∞); a float64 replay of it
    // in L2 is ill-conditioned (see scripts/golden/autoattack_l2.py).
    let apgd = Apgd {
        config,
        loss: ApgdLoss::CrossEntropy,
    };
    let run = apgd.run_from(&model, &t["x"], &y, &t["start"]).unwrap();
    assert_run_matches("ce", &run, &t, steps);
    assert!(
        run.robust.iter().any(|&r| r) && run.robust.iter().any(|&r| !r),
        "the replay should see examples fooled and not"
    );
    let apgd_t = ApgdTargeted {
        config,
        target_classes: 9,
    };
    let targets = labels(&t["apgd_t_targets"]);
    let run = apgd_t
        .run_from(&model, &t["x"], &y, &targets, &t["start"])
        .unwrap();
    assert_run_matches("t", &run, &t, steps);
}

#[test]
fn fab_projection_l2_matches_the_reference_in_each_of_its_cases() {
    let t = fixture();
    let (rows, d) = t["proj_points"].dims2().unwrap();
    assert_eq!(rows, t["proj_b"].dim(0).unwrap());
    let (points, w, b) = (
        f64s(&t["proj_points"]),
        f64s(&t["proj_w"]),
        f64s(&t["proj_b"]),
    );
    let ours = projection_l2(&points, &w, &b, d);
    assert_close("projection_l2", &ours, &f64s(&t["proj_out"]), 1e-12);
    // Its three cases: the plain projection lies in the box; the box stops it on a face before
    // the hyperplane (found by bisection); the hyperplane is out of the box's reach.
    let (mut inside, mut on_faces, mut out_of_reach) = (0, 0, 0);
    for (r, offset) in b.iter().enumerate() {
        let row = r * d..(r + 1) * d;
        let moved: Vec<f64> = points[row.clone()]
            .iter()
            .zip(&ours[row.clone()])
            .map(|(p, s)| p + s)
            .collect();
        assert!(moved.iter().all(|v| (-1e-12..=1.0 + 1e-12).contains(v)));
        let plane: f64 = moved.iter().zip(&w[row]).map(|(p, w)| p * w).sum::<f64>() - offset;
        let faces = moved
            .iter()
            .any(|&v| v.abs() < 1e-12 || (v - 1.0).abs() < 1e-12);
        match (plane.abs() < 1e-9 * (1.0 + offset.abs()), faces) {
            (true, false) => inside += 1,
            (true, true) => on_faces += 1,
            (false, _) => out_of_reach += 1,
        }
    }
    assert!(
        inside > 0 && on_faces > 0 && out_of_reach > 0,
        "cases reached: {inside} inside, {on_faces} on faces, {out_of_reach} out of reach"
    );
}

#[test]
fn fab_l2_replays_the_reference() {
    let t = fixture();
    let model = mlp(&t, "");
    let y = labels(&t["y"]);
    let eps = scalar(&t, "eps");
    // FAB-T runs once per target without a random start: nothing is drawn.
    let fab_t = Fab {
        norm: Norm::L2,
        ..Fab::targeted(eps)
    };
    let adv = fab_t
        .perturb(&model, &t["x"], &y, &mut host_rng(0, 0))
        .unwrap();
    let d = max_abs_diff(&adv, &t["fab_t_adv"]);
    assert!(d <= 1e-12, "FAB-T (L2) differs by {d}");
    let fab = Fab {
        norm: Norm::L2,
        ..Fab::untargeted(eps)
    };
    let adv = fab.single_run(&model, &t["x"], &y, None, None).unwrap();
    let d = max_abs_diff(&adv, &t["fab_single_run_adv"]);
    assert!(d <= 1e-12, "FAB single run (L2) differs by {d}");
}

#[test]
fn square_l2_replays_the_reference_with_its_draws() {
    let t = fixture();
    let model = mlp(&t, "square_");
    let (x, y) = (&t["square_x"], &labels(&t["square_y"]));
    let mut draws = Replay {
        stripes: Vec::new(),
        ints: usizes(&t["square_ints"]).into(),
        signs: f64s(&t["square_signs"]).into(),
        flips: usizes(&t["square_flips"]).iter().map(|&f| f != 0).collect(),
    };
    let square = Square {
        queries: usizes(&t["square_queries"])[0],
        norm: Norm::L2,
        ..Square::new(scalar(&t, "square_eps"))
    };
    let adv = square.perturb_with(&model, x, y, &mut draws).unwrap();
    assert!(
        draws.ints.is_empty() && draws.signs.is_empty() && draws.flips.is_empty(),
        "draws left over: {} window, {} sign, {} pattern",
        draws.ints.len(),
        draws.signs.len(),
        draws.flips.len()
    );
    let d = max_abs_diff(&adv, &t["square_adv"]);
    assert!(d <= 1e-12, "Square (L2) differs by {d}");
}

#[test]
fn square_l2_windows_are_odd_and_at_least_three() {
    let sq = Square {
        norm: Norm::L2,
        ..Square::new(0.5)
    };
    // round(√(p·32·32)), at least 3 and odd: p = 0.8 gives 28.6 → 29; p = 0.8/512 gives 1 → 3.
    assert_eq!(sq.window(0, 3, 32, 32), 29);
    assert_eq!(sq.window(100, 3, 32, 32), 15);
    assert_eq!(sq.window(9000, 3, 32, 32), 3);
    assert_eq!(sq.window(0, 3, 16, 16), 15);
    let tiny = random_mlp(1, 48);
    let x = images(2, 3, 4);
    let y = Tensor::new(&[0u32, 1, 2], &Device::Cpu).unwrap();
    let e = sq
        .perturb(&tiny, &x, &y, &mut host_rng(0, 0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 5 pixels"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Behaviour on float32 models

/// 6×6 images: Square's L2 start tiles an image in fifths.
const SIDE: usize = 6;

fn random_mlp(seed: u64, inputs: usize) -> Mlp {
    common::random_mlp(seed, inputs, 10, 0.3)
}

fn images(seed: u64, n: usize, side: usize) -> Tensor {
    spat_core::rng::uniform(
        &mut host_rng(seed, 7),
        (n, 3, side, side),
        0.0,
        1.0,
        &Device::Cpu,
    )
    .unwrap()
}

/// Every attack spat has, in L2, with small budgets: built from their specs at radius `eps`.
fn l2_attacks(eps: f64) -> Vec<(String, Box<dyn Attack>)> {
    let specs = "fgsm,pgd10,cw10,pgd10-kl,pgd10-ls:0.3,pgd5x2@every-iterate,pgd5x2@eps=0.2,\
                 apgd10x2-ce,apgd10-dlr@eot=2,apgd10-t@targets=3,fab10-t@targets=3,fab10x2,\
                 square50";
    let mut attacks: Vec<(String, Box<dyn Attack>)> = AttackSpec::parse_list(specs)
        .unwrap()
        .iter()
        .map(|s| {
            let attack = spat_attacks::build(s, eps, Norm::L2).unwrap();
            (s.to_string(), attack)
        })
        .collect();
    let mut aa = spat_attacks::AutoAttack::standard(eps).in_norm(Norm::L2);
    for part in &mut aa.parts {
        *part = match part.clone() {
            Part::Apgd(a) => Part::Apgd(Apgd {
                config: ApgdConfig {
                    steps: 5,
                    ..a.config
                },
                ..a
            }),
            Part::ApgdTargeted(a) => Part::ApgdTargeted(ApgdTargeted {
                config: ApgdConfig {
                    steps: 5,
                    ..a.config
                },
                ..a
            }),
            Part::Fab(a) => Part::Fab(Fab { steps: 5, ..a }),
            Part::Square(a) => Part::Square(Square { queries: 20, ..a }),
        };
        assert_eq!(part.norm(), Norm::L2);
    }
    attacks.push(("autoattack (small budgets)".into(), Box::new(aa)));
    attacks
}

#[test]
fn every_l2_attack_stays_in_the_ball_and_the_box_and_is_seeded() {
    let eps = 0.5;
    let model = random_mlp(1, 3 * SIDE * SIDE);
    let x = images(2, 12, SIDE);
    let y = mostly_correct_labels(&model, &x, 10);
    for (name, attack) in l2_attacks(eps) {
        let adv = attack.perturb(&model, &x, &y, &mut host_rng(3, 0)).unwrap();
        assert_eq!(adv.dims(), x.dims(), "{name}");
        // `pgd5x2@eps=0.2` has a radius of its own.
        let radius = if name.contains("@eps=0.2") { 0.2 } else { eps };
        let gaps = l2_distances(&adv, &x);
        assert!(
            gaps.iter().all(|&g| g <= radius + 1e-5),
            "{name}: ‖δ‖₂ up to {:?}",
            gaps.iter().cloned().fold(0f64, f64::max)
        );
        assert!(
            f64s(&adv).iter().all(|p| (0.0..=1.0).contains(p)),
            "{name}: left [0, 1]"
        );
        let again = attack.perturb(&model, &x, &y, &mut host_rng(3, 0)).unwrap();
        assert_eq!(f64s(&adv), f64s(&again), "{name}: same seed, other result");
        // The L∞ ball of the same radius is a different set: some attack leaves it.
        if name == "pgd10" {
            let linf = max_abs_diff(&adv, &x);
            assert!(linf < eps && linf > 0.05, "{name}: ‖δ‖∞ = {linf}");
        }
    }
}

#[test]
fn l2_attacks_fool_and_leave_the_rest_untouched() {
    let eps = 1.5;
    let model = random_mlp(4, 3 * SIDE * SIDE);
    let x = images(5, 16, SIDE);
    let y = mostly_correct_labels(&model, &x, 10);
    let labels = y.to_vec1::<u32>().unwrap();
    for (name, attack) in l2_attacks(eps) {
        let adv = attack.perturb(&model, &x, &y, &mut host_rng(6, 0)).unwrap();
        let ok = common::correct(&model, &adv, &y);
        let mut fooled = 0;
        for i in 0..15 {
            let row = |t: &Tensor| f64s(&t.narrow(0, i, 1).unwrap());
            // AutoAttack's attacks return the clean image unless they fool the model.
            let judged =
                !name.starts_with("fgsm") && !name.starts_with("pgd") && !name.starts_with("cw");
            if judged && row(&adv) != row(&x) {
                assert!(
                    !ok[i],
                    "{name}: example {i} changed but not fooled ({})",
                    labels[i]
                );
            }
            fooled += usize::from(!ok[i]);
        }
        assert!(
            fooled > 0,
            "{name} fooled nothing at ε = {eps} (L2) on a random MLP"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Accuracies against the reference on a model trained for it

#[test]
fn autoattack_l2_accuracies_match_the_reference_on_a_trained_mlp() {
    common::assert_autoattack_matches_the_reference("autoattack_l2_mlp.safetensors", Norm::L2);
}
