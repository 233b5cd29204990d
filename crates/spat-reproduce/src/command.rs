//! The `spat` command line of each cell.

use std::path::Path;

use spat_policy::RunRequest;
use spat_spec::dataset::PSEUDO_LABELED_FILE;
use spat_spec::{AttackSpec, Radius};

use crate::cell::Context;
use crate::matrix::{Cell, Checkpoint, Job, TrainSpec};

/// The `spat` arguments of a cell (for a training cell, the fresh-start form).
pub fn spat_args(ctx: &Context, cell: &Cell) -> Vec<String> {
    let dir = ctx.cell_dir(&cell.name);
    let mut a = match &cell.job {
        Job::Train(t) => train_args(ctx, t),
        Job::Eval {
            train,
            checkpoint,
            attacks,
            eps,
            test_subset,
        } => {
            let mut a = words(["eval"]);
            a.extend(model_args(ctx, train, *checkpoint));
            a.extend(words([
                "--attacks",
                &list(attacks),
                "--eps",
                &eps.to_string(),
            ]));
            subset(&mut a, "--test-subset", *test_subset);
            a.push("--json".into());
            a
        }
        Job::Sweep {
            train,
            checkpoint,
            alphas,
            eps,
            test_subset,
        } => {
            let mut a = words(["sweep-alpha"]);
            a.extend(model_args(ctx, train, *checkpoint));
            let alphas: Vec<String> = alphas.iter().map(f64::to_string).collect();
            a.extend(words([
                "--alphas",
                &alphas.join(","),
                "--eps",
                &eps.to_string(),
            ]));
            subset(&mut a, "--test-subset", *test_subset);
            a
        }
        Job::Visualize {
            train,
            attacks,
            eps,
            classes,
        } => {
            let mut a = words(["visualize"]);
            a.extend(model_args(ctx, train, Checkpoint::Last));
            a.extend(words(["--attacks", &list(attacks), "--eps", &radii(eps)]));
            a.extend(words(["--classes", &classes.join(",")]));
            a
        }
        Job::Gradients { models, classes } => gradients_args(ctx, models, classes),
    };
    a.extend(words(["--device", &ctx.device]));
    match cell.job {
        // eval prints its JSON; the runner stores it.
        Job::Eval { .. } => {}
        // visualize and gradients write one PNG: a file inside the cell directory.
        Job::Visualize { .. } | Job::Gradients { .. } => {
            a.extend(words(["--out", &path(&dir.join("grid.png"))]))
        }
        _ => a.extend(words(["--out", &path(&dir)])),
    }
    a
}

/// `spat train`'s arguments for `t`, before `--device` and `--out`.
fn train_args(ctx: &Context, t: &TrainSpec) -> Vec<String> {
    let mut a = words(["train", "--dataset", t.dataset.as_str()]);
    a.extend(words(["--data-dir", &path(ctx.dirs.dir(t.dataset))]));
    a.extend(words([
        "--model",
        t.model,
        "--method",
        &t.method.to_string(),
    ]));
    if let Some(alpha) = t.spat_alpha {
        a.extend(words(["--spat-alpha", &alpha.to_string()]));
    }
    a.extend(words(["--eps", &t.eps.to_string()]));
    if let Some(step) = t.attack_step {
        a.extend(words(["--attack-step-size", &step.to_string()]));
    }
    a.extend(words(["--epochs", &t.epochs.to_string()]));
    a.extend(words(["--batch-size", &t.batch_size.to_string()]));
    subset(&mut a, "--train-subset", t.train_subset);
    subset(&mut a, "--val-subset", t.val_subset);
    subset(&mut a, "--test-subset", t.test_subset);
    if t.pseudo_labeled {
        a.extend(words([
            "--pseudo-labeled",
            &path(&ctx.dirs.pseudo_labeled()),
        ]));
    }
    a.extend(words(["--seed", &t.seed.to_string()]));
    a
}

/// What `spat train` makes of `train_args`: the request the policy configures (with the data
/// folders left out; the listing of settings reads the configuration, not the paths).
pub fn train_request(t: &TrainSpec) -> RunRequest {
    let mut r = RunRequest::new(t.model, t.dataset, "", t.method);
    if t.pseudo_labeled {
        r.pseudo_labeled = Some(PSEUDO_LABELED_FILE.into());
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
    r
}

/// `spat gradients`' arguments: the first model's preset and data, every model's last weights.
fn gradients_args(ctx: &Context, models: &[(String, TrainSpec)], classes: &[&str]) -> Vec<String> {
    let first = &models[0].1;
    let mut a = words(["gradients", "--model", first.model]);
    for (label, t) in models {
        let weights = ctx.cell_dir(&t.name()).join(Checkpoint::Last.file());
        a.extend(words([
            "--checkpoint",
            &format!("{label}={}", path(&weights)),
        ]));
    }
    a.extend(words(["--dataset", first.dataset.as_str()]));
    a.extend(words(["--data-dir", &path(ctx.dirs.dir(first.dataset))]));
    a.extend(words(["--classes", &classes.join(",")]));
    a
}

/// The model, weights and data of a measurement of `t`'s `checkpoint`.
fn model_args(ctx: &Context, t: &TrainSpec, checkpoint: Checkpoint) -> Vec<String> {
    let weights = ctx.cell_dir(&t.name()).join(checkpoint.file());
    let mut a = words(["--model", t.model, "--checkpoint", &path(&weights)]);
    a.extend(words(["--dataset", t.dataset.as_str()]));
    a.extend(words(["--data-dir", &path(ctx.dirs.dir(t.dataset))]));
    a
}

fn words<const N: usize>(w: [&str; N]) -> Vec<String> {
    w.map(String::from).to_vec()
}

fn subset(a: &mut Vec<String>, flag: &str, n: Option<usize>) {
    if let Some(n) = n {
        a.extend([flag.to_string(), n.to_string()]);
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn radii(eps: &[Radius]) -> String {
    eps.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn list(attacks: &[AttackSpec]) -> String {
    attacks
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `args` as a shell command line, quoted where needed.
pub fn quote(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.contains([' ', '*', '(', ')']) {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataDirs;
    use crate::matrix::{self, Scale};

    /// The value of `flag` in `args`.
    fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
        let i = args.iter().position(|a| a == flag)?;
        Some(args[i + 1].as_str())
    }

    /// Every flag of `spat train` that [`train_args`] writes, each checked below but the data
    /// folder.
    const KNOWN: &[&str] = &[
        "--dataset",
        "--data-dir",
        "--model",
        "--method",
        "--spat-alpha",
        "--eps",
        "--attack-step-size",
        "--epochs",
        "--batch-size",
        "--train-subset",
        "--val-subset",
        "--test-subset",
        "--pseudo-labeled",
        "--seed",
    ];

    #[test]
    fn the_request_is_what_the_training_command_asks_for() {
        let ctx = Context {
            out: "/out".into(),
            device: "cpu".into(),
            dirs: DataDirs::resolve(Some(std::path::Path::new("/data")), Scale::Full),
        };
        let mut runs = 0;
        for scale in [Scale::Full, Scale::Short, Scale::Smoke] {
            for id in matrix::IDS {
                for t in matrix::plan(id, scale).unwrap().trains() {
                    let (a, r) = (train_args(&ctx, t), train_request(t));
                    for f in a.iter().filter(|w| w.starts_with("--")) {
                        assert!(KNOWN.contains(&f.as_str()), "{f}: not in the request");
                    }
                    let number = |f: &str| flag(&a, f).map(|v| v.parse::<usize>().unwrap());
                    let radius =
                        |f: &str| flag(&a, f).map(|v| v.parse::<Radius>().unwrap().value());
                    assert_eq!(flag(&a, "--model"), Some(r.model.as_str()));
                    assert_eq!(flag(&a, "--dataset"), Some(r.dataset.as_str()));
                    assert_eq!(flag(&a, "--method"), Some(r.method.to_string().as_str()));
                    assert_eq!(
                        flag(&a, "--spat-alpha").map(|v| v.parse::<f64>().unwrap()),
                        r.spat_alpha
                    );
                    assert_eq!(radius("--eps"), r.eps);
                    assert_eq!(radius("--attack-step-size"), r.attack_step_size);
                    assert_eq!(number("--epochs"), r.epochs);
                    assert_eq!(number("--batch-size"), r.batch_size);
                    assert_eq!(number("--train-subset"), r.train_subset);
                    assert_eq!(number("--val-subset"), r.val_subset);
                    assert_eq!(number("--test-subset"), r.test_subset);
                    assert_eq!(
                        flag(&a, "--pseudo-labeled").is_some(),
                        r.pseudo_labeled.is_some()
                    );
                    assert_eq!(flag(&a, "--seed"), Some(r.seed.to_string().as_str()));
                    r.configure()
                        .unwrap_or_else(|e| panic!("{id} {scale}: {e}"));
                    runs += 1;
                }
            }
        }
        assert!(runs > 100, "{runs}");
    }
}
