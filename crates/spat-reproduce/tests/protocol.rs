//! The settings `cargo xtask reproduce --dry-run` lists against what runs: every training run of
//! every id and scale, configured by spat-train's policy exactly as `spat train` configures it from
//! the arguments xtask passes, must have the values xtask's listing claims; and the step sizes the
//! listing prints are spat-attacks'.

use spat_reproduce::matrix::{self, Scale, TrainSpec};
use spat_reproduce::protocol::{self, training_claims};
use spat_spec::Radius;
use spat_train::RunRequest;

/// What `spat train` makes of the arguments xtask passes for `t` (reproduce.rs `Context::command`).
fn configured(t: &TrainSpec) -> spat_spec::RunConfig {
    let mut r = RunRequest::new(t.model, t.dataset, "data", t.method);
    if t.pseudo_labeled {
        r.pseudo_labeled = Some("ti_500K_pseudo_labeled.pickle".into());
    }
    r.spat_alpha = t.spat_alpha;
    r.eps = Some(t.eps.value());
    r.attack_step_size = t.attack_step.map(|s| s.value());
    r.epochs = Some(t.epochs);
    r.batch_size = Some(t.batch_size);
    r.train_subset = t.train_subset;
    r.val_subset = t.val_subset;
    r.test_subset = t.test_subset;
    r.seed = t.seed;
    r.configure()
        .unwrap_or_else(|e| panic!("{}: {e}", t.name()))
}

#[test]
fn listed_training_settings_are_the_policys() {
    let mut runs = 0;
    for scale in [Scale::Full, Scale::Short, Scale::Smoke] {
        for id in matrix::IDS {
            let plan = matrix::plan(id, scale).unwrap();
            for t in plan.trains() {
                let c = configured(t);
                let claims = training_claims(t);
                let who = format!("{id} {scale} {}", t.name());
                assert_eq!(claims.epochs, c.epochs, "{who}");
                assert_eq!(claims.batch_size, c.batch_size, "{who}");
                assert_eq!(claims.lr, c.lr, "{who}");
                assert_eq!(claims.schedule, c.schedule, "{who}");
                assert_eq!(claims.momentum, c.momentum, "{who}");
                assert_eq!(claims.nesterov, c.nesterov, "{who}");
                assert_eq!(claims.weight_decay, c.weight_decay, "{who}");
                assert_eq!(claims.eps, c.eps, "{who}");
                assert_eq!(claims.attack_steps, c.attack_steps, "{who}");
                assert!(
                    (claims.attack_step_size - c.attack_step_size).abs() < 1e-15,
                    "{who}"
                );
                assert_eq!(
                    claims.adversary_mode,
                    t.method.is_adversarial().then_some(c.adversary_mode),
                    "{who}"
                );
                assert_eq!(claims.trades_beta, c.trades_beta, "{who}");
                assert_eq!(claims.mart_lambda, c.mart_lambda, "{who}");
                assert_eq!(
                    claims.unlabeled_fraction,
                    c.pseudo_labeled.as_ref().map(|p| p.fraction),
                    "{who}"
                );
                assert_eq!(claims.val_subset, c.val_subset, "{who}");
                assert_eq!(claims.seed, c.seed, "{who}");
                // The adversary the trainer builds is the one the listing describes.
                let adversary = spat_train::training_adversary(&c);
                assert_eq!(adversary.is_some(), t.method.is_adversarial(), "{who}");
                if let Some(a) = adversary {
                    let listed = protocol::training(id, scale, t);
                    let start = listed
                        .iter()
                        .find(|l| l.key == "adversary start and batch norm")
                        .unwrap();
                    let uniform = start.value.starts_with("uniform");
                    assert_eq!(
                        uniform,
                        a.random_start == spat_attacks::RandomStart::Uniform,
                        "{who}: {}",
                        start.value
                    );
                }
                runs += 1;
            }
        }
    }
    assert!(runs > 100, "{runs}");
}

/// The thesis's and the references' numbers, where the listing states them, as they are in
/// spat-train's policy for the full-scale runs.
#[test]
fn full_scale_settings_are_the_references() {
    let table = |id: &str| matrix::plan(id, Scale::Full).unwrap();
    for t in table("table6.1").trains() {
        let c = configured(t);
        assert_eq!((c.epochs, c.batch_size, c.weight_decay), (90, 128, 7e-4));
        assert_eq!(c.schedule.drops(c.epochs), [75, 90]);
    }
    for t in table("table6.2").trains() {
        let c = configured(t);
        let wd = match t.method {
            spat_spec::Method::Mart => 7e-4,
            _ => 2e-4,
        };
        assert_eq!(c.weight_decay, wd, "{}", t.name());
    }
    for t in table("table6.3").trains() {
        let c = configured(t);
        assert_eq!((c.eps, c.attack_step_size), (0.031, 0.007));
        assert_eq!((c.epochs, c.batch_size, c.weight_decay), (200, 256, 5e-4));
        assert!(c.nesterov);
    }
    for t in table("table6.4").trains() {
        let c = configured(t);
        assert_eq!((c.epochs, c.batch_size), (200, 32));
    }
}

#[test]
fn listed_step_sizes_are_spat_attacks() {
    let eps = Radius::over_255(8.0);
    let text = protocol::attack_text(&"pgd20".parse().unwrap(), eps);
    let step = spat_attacks::evaluation_step_size(eps.value());
    assert!(text.contains(&format!("{step:.7}")), "{text}: {step}");
}
