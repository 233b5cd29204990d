//! AutoAttack's attacks replayed against the reference implementation (fra31/auto-attack), in
//! float64 on a small tanh MLP, from the fixture written by `scripts/golden/autoattack.py`: the
//! DLR losses and gradients, APGD's per-iteration losses, step sizes and checkpoints from a saved
//! start, FAB-T (deterministic), and Square Attack with the reference's random draws replayed.

mod common;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use candle_core::{Device, Tensor, Var};
use spat_attacks::autoattack::Part;
use spat_attacks::{
    losses, Apgd, ApgdConfig, ApgdLoss, ApgdTargeted, Attack, CheckpointSchedule, Fab, Norm, Square,
};
use spat_core::rng::host_rng;
use spat_core::{Classifier, Mode};

use common::{
    assert_close, assert_run_matches, f32s, f64s, labels, max_abs_diff, mostly_correct_labels,
    usizes, Mlp, Replay,
};

fn fixture() -> HashMap<String, Tensor> {
    common::load_fixture("autoattack_replay.safetensors")
}

fn model(t: &HashMap<String, Tensor>) -> Mlp {
    Mlp {
        w1: t["w1"].clone(),
        w2: t["w2"].clone(),
    }
}

fn eps(t: &HashMap<String, Tensor>) -> f64 {
    f64s(&t["eps"])[0]
}

#[test]
fn dlr_losses_and_gradients_match_the_reference() {
    let t = fixture();
    let z = Var::from_tensor(&t["dlr_logits"]).unwrap();
    let y = labels(&t["dlr_labels"]);
    let targets = labels(&t["dlr_targets"]);
    let cases: [(&str, Tensor); 2] = [
        ("dlr", losses::dlr(z.as_tensor(), &y).unwrap()),
        (
            "dlr_targeted",
            losses::dlr_targeted(z.as_tensor(), &y, &targets).unwrap(),
        ),
    ];
    for (name, loss) in cases {
        assert_close(
            name,
            &f64s(&loss),
            &f64s(&t[&format!("{name}_value")]),
            1e-13,
        );
        let g = loss.sum_all().unwrap().backward().unwrap();
        let g = g.get(z.as_tensor()).unwrap();
        assert_close(
            &format!("{name} gradient"),
            &f64s(g),
            &f64s(&t[&format!("{name}_grad")]),
            1e-13,
        );
    }
}

#[test]
fn dlr_needs_enough_classes() {
    let z = Tensor::new(&[[1f32, 2.0], [0.5, 0.1]], &Device::Cpu).unwrap();
    let y = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
    assert!(losses::dlr(&z, &y).is_err());
    let z = Tensor::new(&[[1f32, 2.0, 3.0]], &Device::Cpu).unwrap();
    let y = Tensor::new(&[0u32], &Device::Cpu).unwrap();
    assert!(losses::dlr(&z, &y).is_ok());
    assert!(losses::dlr_targeted(&z, &y, &Tensor::new(&[1u32], &Device::Cpu).unwrap()).is_err());
}

#[test]
fn checkpoint_schedules_match_the_reference() {
    let t = fixture();
    for steps in [1usize, 5, 10, 20, 50, 100, 1000] {
        let ours = CheckpointSchedule::new(steps).checkpoints(steps);
        assert_eq!(
            ours,
            usizes(&t[&format!("schedule_{steps}")]),
            "{steps} steps"
        );
    }
    // The paper's checkpoints for 100 iterations: 0.22, then intervals shrinking by 0.03 to 0.06.
    assert_eq!(
        CheckpointSchedule::new(100).checkpoints(100),
        vec![21, 40, 56, 69, 79, 86, 92, 98]
    );
}

#[test]
fn apgd_replays_the_reference_run() {
    let t = fixture();
    let model = model(&t);
    let y = labels(&t["y"]);
    for (tag, loss, steps) in [
        ("ce", ApgdLoss::CrossEntropy, 100),
        ("dlr", ApgdLoss::Dlr, 100),
        ("ce20", ApgdLoss::CrossEntropy, 20),
    ] {
        let apgd = Apgd {
            config: ApgdConfig {
                steps,
                ..ApgdConfig::autoattack(eps(&t))
            },
            loss,
        };
        let run = apgd.run_from(&model, &t["x"], &y, &t["start"]).unwrap();
        assert_run_matches(tag, &run, &t, steps);
    }
    let apgd_t = ApgdTargeted::new(eps(&t));
    let run = apgd_t
        .run_from(
            &model,
            &t["x"],
            &y,
            &labels(&t["apgd_t_targets"]),
            &t["start"],
        )
        .unwrap();
    assert_run_matches("t", &run, &t, 100);
}

#[test]
fn fab_replays_the_reference() {
    let t = fixture();
    let model = model(&t);
    let y = labels(&t["y"]);
    let fab_t = Fab::targeted(eps(&t));
    // FAB-T runs once per target without a random start: nothing is drawn.
    let adv = fab_t
        .perturb(&model, &t["x"], &y, &mut host_rng(0, 0))
        .unwrap();
    let d = max_abs_diff(&adv, &t["fab_t_adv"]);
    assert!(d <= 1e-9, "FAB-T differs by {d}");
    let fab = Fab::untargeted(eps(&t));
    let adv = fab.single_run(&model, &t["x"], &y, None, None).unwrap();
    let d = max_abs_diff(&adv, &t["fab_single_run_adv"]);
    assert!(d <= 1e-9, "FAB single run differs by {d}");
}

#[test]
fn square_replays_the_reference_with_its_draws() {
    let t = fixture();
    let model = model(&t);
    let y = labels(&t["y"]);
    let mut draws = Replay {
        stripes: f64s(&t["square_stripes"]),
        ints: usizes(&t["square_ints"]).into(),
        signs: f64s(&t["square_channel_signs"]).into(),
        flips: VecDeque::new(),
    };
    let square = Square {
        queries: usizes(&t["square_queries"])[0],
        ..Square::new(eps(&t))
    };
    let adv = square
        .perturb_with(&model, &t["x"], &y, &mut draws)
        .unwrap();
    assert!(
        draws.ints.is_empty() && draws.signs.is_empty(),
        "draws left over"
    );
    let d = max_abs_diff(&adv, &t["square_adv"]);
    assert!(d <= 1e-12, "Square differs by {d}");
}

#[test]
fn square_window_schedule_follows_the_reference() {
    let sq = Square::new(8.0 / 255.0);
    // p_init = 0.8 halves at 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 iterations.
    let p: Vec<f64> = [0, 10, 11, 50, 51, 200, 201, 4000, 4001, 8001]
        .iter()
        .map(|&i| sq.p_selection(i))
        .collect();
    let want = [
        0.8,
        0.8,
        0.4,
        0.4,
        0.2,
        0.2,
        0.1,
        0.8 / 64.0,
        0.8 / 128.0,
        0.8 / 512.0,
    ];
    assert_eq!(p, want);
    // Side round(sqrt(p·h·w)) on 32×32 images, at least 1.
    assert_eq!(sq.window(0, 3, 32, 32), 29);
    assert_eq!(sq.window(100, 3, 32, 32), 14);
    assert_eq!(sq.window(9000, 3, 32, 32), 1);
}

// ---------------------------------------------------------------------------------------------
// Behaviour on float32 models

fn random_mlp(seed: u64, inputs: usize, classes: usize) -> Mlp {
    common::random_mlp(seed, inputs, classes, 0.3)
}

fn random_images(seed: u64, n: usize) -> Tensor {
    spat_core::rng::uniform(&mut host_rng(seed, 7), (n, 3, 4, 4), 0.0, 1.0, &Device::Cpu).unwrap()
}

/// Each attack of AutoAttack with a small budget, as a `Part` (which names it by its spec).
fn quick_attacks(eps: f64) -> Vec<Part> {
    vec![
        Part::Apgd(Apgd {
            config: ApgdConfig {
                steps: 10,
                restarts: 2,
                ..ApgdConfig::autoattack(eps)
            },
            loss: ApgdLoss::CrossEntropy,
        }),
        Part::Apgd(Apgd {
            config: ApgdConfig {
                steps: 10,
                eot_iter: 2,
                ..ApgdConfig::autoattack(eps)
            },
            loss: ApgdLoss::Dlr,
        }),
        Part::ApgdTargeted(ApgdTargeted {
            config: ApgdConfig {
                steps: 10,
                ..ApgdConfig::autoattack(eps)
            },
            target_classes: 3,
        }),
        Part::Fab(Fab {
            steps: 10,
            target_classes: 3,
            ..Fab::targeted(eps)
        }),
        Part::Fab(Fab {
            steps: 10,
            restarts: 2,
            ..Fab::untargeted(eps)
        }),
        Part::Square(Square {
            queries: 50,
            ..Square::new(eps)
        }),
    ]
}

#[test]
fn every_attack_stays_in_the_ball_and_the_box_and_is_seeded() {
    let eps = 8.0 / 255.0;
    let model = random_mlp(1, 48, 10);
    let x = random_images(2, 12);
    let y = mostly_correct_labels(&model, &x, 10);
    for part in quick_attacks(eps) {
        let (name, attack) = (part.name(), part.attack());
        let adv = attack.perturb(&model, &x, &y, &mut host_rng(3, 0)).unwrap();
        assert_eq!(adv.dims(), x.dims(), "{name}");
        let gap = max_abs_diff(&adv, &x);
        let v = f64s(&adv);
        // FAB may return points beyond ε for examples it does not count as fooled; those keep the
        // clean image, so the returned batch is within ε everywhere.
        assert!(gap <= eps + 1e-6, "{name}: ‖δ‖∞ = {gap}");
        assert!(
            v.iter().all(|p| (0.0..=1.0).contains(p)),
            "{name}: left [0, 1]"
        );
        let again = attack.perturb(&model, &x, &y, &mut host_rng(3, 0)).unwrap();
        assert_eq!(f64s(&adv), f64s(&again), "{name}: same seed, other result");
        // An example misclassified from the start is returned as it came.
        let last = adv.narrow(0, 11, 1).unwrap();
        assert_eq!(f64s(&last), f64s(&x.narrow(0, 11, 1).unwrap()), "{name}");
    }
}

#[test]
fn fooled_examples_are_misclassified_and_the_rest_untouched() {
    let eps = 16.0 / 255.0;
    let model = random_mlp(4, 48, 10);
    let x = random_images(5, 16);
    let y = mostly_correct_labels(&model, &x, 10);
    let labels = y.to_vec1::<u32>().unwrap();
    for part in quick_attacks(eps) {
        let (name, attack) = (part.name(), part.attack());
        let adv = attack.perturb(&model, &x, &y, &mut host_rng(6, 0)).unwrap();
        let pred = model
            .logits(&adv, Mode::Eval)
            .unwrap()
            .argmax(1)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        let mut fooled = 0;
        for i in 0..15 {
            let row = |t: &Tensor| f64s(&t.narrow(0, i, 1).unwrap());
            if row(&adv) != row(&x) {
                assert_ne!(
                    pred[i], labels[i],
                    "{name}: example {i} changed but not fooled"
                );
                fooled += 1;
            }
        }
        assert!(
            fooled > 0,
            "{name} fooled nothing at ε = 16/255 on a random MLP"
        );
    }
}

#[test]
fn apgd_averages_eot_gradients_over_the_given_number_of_passes() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Counting<'a> {
        inner: &'a Mlp,
        calls: AtomicUsize,
    }
    impl Classifier for Counting<'_> {
        fn logits(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.inner.logits(x, mode)
        }
    }
    let mlp = random_mlp(7, 48, 10);
    let model = Counting {
        inner: &mlp,
        calls: AtomicUsize::new(0),
    };
    let x = random_images(8, 4);
    let y = mostly_correct_labels(&mlp, &x, 10);
    let apgd = Apgd {
        config: ApgdConfig {
            steps: 7,
            eot_iter: 3,
            ..ApgdConfig::autoattack(4.0 / 255.0)
        },
        loss: ApgdLoss::CrossEntropy,
    };
    apgd.run_from(&model, &x, &y, &x).unwrap();
    // The start and each of the 7 iterations: 3 passes each.
    assert_eq!(model.calls.load(Ordering::Relaxed), 8 * 3);
}

#[test]
fn impossible_settings_are_errors() {
    let model = random_mlp(9, 48, 3);
    let x = random_images(10, 2);
    let y = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
    let mut rng = host_rng(0, 0);
    let err = |a: &dyn Attack, rng: &mut spat_attacks::HostRng| {
        a.perturb(&model, &x, &y, rng).unwrap_err().to_string()
    };
    assert!(err(&ApgdTargeted::new(0.03), &mut rng).contains("at least 4 classes"));
    assert!(err(&Fab::targeted(0.03), &mut rng).contains("at least 10 classes"));
    assert!(err(&Apgd::new(-1.0, ApgdLoss::CrossEntropy), &mut rng).contains("eps"));
    let mut zero = Apgd::new(0.03, ApgdLoss::CrossEntropy);
    zero.config.steps = 0;
    assert!(err(&zero, &mut rng).contains("at least one iteration"));
    let two = random_mlp(9, 48, 2);
    let e = Apgd::new(0.03, ApgdLoss::Dlr)
        .perturb(&two, &x, &y, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 3 classes"), "{e}");
}

#[test]
fn autoattack_runs_each_attack_on_the_survivors_only() {
    use spat_attacks::autoattack::Part;
    let eps = 8.0 / 255.0;
    let model = random_mlp(11, 48, 10);
    let x = random_images(12, 24);
    let y = mostly_correct_labels(&model, &x, 10);
    let mut aa = spat_attacks::AutoAttack::standard(eps);
    for part in &mut aa.parts {
        match part {
            Part::Apgd(a) => a.config.steps = 5,
            Part::ApgdTargeted(a) => a.config.steps = 5,
            Part::Fab(a) => a.steps = 5,
            Part::Square(a) => a.queries = 20,
        }
    }
    // Each attack is named by its spec, budget included.
    let names: Vec<String> = aa.parts.iter().map(Part::name).collect();
    assert_eq!(names, ["apgd5-ce", "apgd5-t", "fab5-t", "square20"]);
    let out = aa.run_batch(&model, &x, &y, &mut host_rng(1, 2)).unwrap();
    assert!(!out.clean[23]);
    let mut prev = out.clean.clone();
    for after in &out.robust_after {
        for (p, a) in prev.iter().zip(after) {
            assert!(
                *p || !*a,
                "an example fooled earlier counts as robust later"
            );
        }
        prev = after.clone();
    }
    // The final flags are exactly the correctness of the returned batch.
    let final_ok = common::correct(&model, &out.x_adv, &y);
    assert_eq!(&final_ok, out.robust_after.last().unwrap());
    // `perturb` is `run_batch`'s batch, and `rand` is APGD-CE + APGD-DLR with 20 EOT passes.
    let adv = aa.perturb(&model, &x, &y, &mut host_rng(1, 2)).unwrap();
    assert_eq!(f64s(&adv), f64s(&out.x_adv));
    let rand = spat_attacks::AutoAttack::rand(eps);
    let names: Vec<String> = rand.parts.iter().map(Part::name).collect();
    assert_eq!(names, ["apgd-ce@eot=20", "apgd-dlr@eot=20"]);
    assert!(rand
        .parts
        .iter()
        .all(|p| matches!(p, Part::Apgd(a) if a.config.eot_iter == 20 && a.config.restarts == 1)));
}

#[test]
fn attacks_leave_batch_norm_statistics_alone() {
    use spat_core::Network;
    let model = spat_models::build("tiny", 10, &Device::Cpu, 0).unwrap();
    let before: Vec<Vec<f64>> = model.var_store().buffers().map(|(_, t)| f64s(t)).collect();
    let x = spat_core::rng::uniform(&mut host_rng(1, 1), (3, 3, 32, 32), 0.0, 1.0, &Device::Cpu)
        .unwrap();
    let y = Tensor::new(&[0u32, 1, 2], &Device::Cpu).unwrap();
    for part in quick_attacks(8.0 / 255.0) {
        part.attack()
            .perturb(model.as_ref(), &x, &y, &mut host_rng(0, 0))
            .unwrap();
    }
    let after: Vec<Vec<f64>> = model.var_store().buffers().map(|(_, t)| f64s(t)).collect();
    assert_eq!(before, after);
}

#[test]
fn pgd_through_a_normalising_wrapper_matches_torchattacks() {
    use spat_attacks::{AttackLoss, Pgd, RandomStart};
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/normalized_pgd.safetensors");
    let t = spat_core::store::load_tensors(&path, &Device::Cpu).unwrap();
    let norm = spat_core::Normalization::new(f32s(&t["mean"]), f32s(&t["std"])).unwrap();
    let model = spat_core::Normalized::new(
        Mlp {
            w1: t["w1"].clone(),
            w2: t["w2"].clone(),
        },
        &norm,
        &Device::Cpu,
    )
    .unwrap();
    let pgd = Pgd {
        eps: 8.0 / 255.0,
        step_size: 2.0 / 255.0,
        steps: 5,
        loss: AttackLoss::CrossEntropy,
        random_start: RandomStart::None,
        mode: Mode::Eval,
        norm: spat_attacks::Norm::Linf,
    };
    let adv = pgd
        .perturb(&model, &t["x"], &labels(&t["y"]), &mut host_rng(0, 0))
        .unwrap();
    // torchattacks works from un-normalise(normalise(x)), a float32 round trip away from x.
    let d = max_abs_diff(&adv, &t["adv"]);
    assert!(d <= 1e-5, "differs from torchattacks by {d}");
    // Without the wrapper the same attack lands elsewhere: the normalisation matters here.
    let bare = Mlp {
        w1: t["w1"].clone(),
        w2: t["w2"].clone(),
    };
    let adv_bare = pgd
        .perturb(&bare, &t["x"], &labels(&t["y"]), &mut host_rng(0, 0))
        .unwrap();
    assert!(max_abs_diff(&adv_bare, &t["adv"]) > 1e-3);
}

#[test]
fn restarts_fool_at_least_what_the_first_run_fools() {
    use spat_attacks::{Pgd, WithRestarts};
    let eps = 4.0 / 255.0;
    let model = random_mlp(13, 48, 10);
    let x = random_images(14, 32);
    let y = mostly_correct_labels(&model, &x, 10);
    let pgd = Pgd {
        steps: 3,
        ..Pgd::pgd20(eps)
    };
    let once = pgd.perturb(&model, &x, &y, &mut host_rng(2, 0)).unwrap();
    let thrice = WithRestarts::new(pgd, 3);
    let adv = thrice.perturb(&model, &x, &y, &mut host_rng(2, 0)).unwrap();
    let (ok_once, ok_thrice) = (
        common::correct(&model, &once, &y),
        common::correct(&model, &adv, &y),
    );
    for (a, b) in ok_once.iter().zip(&ok_thrice) {
        assert!(*a || !*b, "fooled by the first run, robust after three");
    }
    assert!(max_abs_diff(&adv, &x) <= eps + 1e-6);
    let zero = WithRestarts::new(pgd, 0);
    assert!(zero.perturb(&model, &x, &y, &mut host_rng(2, 0)).is_err());
}

#[test]
fn autoattack_warns_about_probabilities_and_randomised_outputs() {
    use std::sync::Mutex;
    struct Softmax(Mlp);
    impl Classifier for Softmax {
        fn logits(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
            losses::softmax(&self.0.logits(x, mode)?)
        }
    }
    struct Noisy(Mlp, Mutex<spat_attacks::HostRng>);
    impl Classifier for Noisy {
        fn logits(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
            let z = self.0.logits(x, mode)?;
            let noise =
                spat_core::rng::normal(&mut *self.1.lock().unwrap(), z.shape(), 0.1, z.device())?;
            z + noise
        }
    }
    let x = random_images(15, 6);
    let y = mostly_correct_labels(&random_mlp(16, 48, 10), &x, 10);
    let batch = || {
        vec![Ok(spat_core::Batch {
            images: x.clone(),
            labels: y.clone(),
        })]
    };
    let mut quick = spat_attacks::AutoAttack::standard(8.0 / 255.0);
    quick.parts.truncate(1);
    let warnings = |model: &dyn Classifier| quick.evaluate(model, batch(), 0).unwrap().warnings;
    assert!(warnings(&random_mlp(16, 48, 10)).is_empty());
    let w = warnings(&Softmax(random_mlp(16, 48, 10)));
    assert!(w.len() == 1 && w[0].contains("probabilities"), "{w:?}");
    let w = warnings(&Noisy(random_mlp(16, 48, 10), Mutex::new(host_rng(1, 1))));
    assert!(w.len() == 1 && w[0].contains("randomised"), "{w:?}");
}

// ---------------------------------------------------------------------------------------------
// Accuracies against the reference on a model trained for it

#[test]
fn autoattack_accuracies_match_the_reference_on_a_trained_mlp() {
    common::assert_autoattack_matches_the_reference("autoattack_mlp.safetensors", Norm::Linf);
}
