//! The `spat` command line of each cell.

use std::path::Path;

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
