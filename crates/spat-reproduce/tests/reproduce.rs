//! `cargo xtask reproduce`: the run matrix of every id (dry run), missing-data errors, report
//! assembly from finished cells, and resumption (finished cells skipped, killed training resumed).
//! A stand-in `spat` (a shell script, via SPAT_BIN) records its calls, so no model is trained here.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use common::{calls, fake_spat, ok, plan, xtask};
use serde_json::Value;
use spat_spec::report::{Measured, Results, Verdict};

fn jobs<'a>(p: &'a Value, kind: &str) -> Vec<&'a Value> {
    p["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["job"])
        .filter(|j| j["kind"] == kind)
        .collect()
}

fn recipe(j: &Value) -> (String, Option<f64>) {
    (
        j["method"].as_str().unwrap().to_string(),
        j["spat_alpha"].as_f64(),
    )
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// (id, data set, model, epochs, batch size, training ε): each table's settings (§6.1; epochs and
/// batch sizes the thesis leaves open from MART's and RST's code, ε as the source writes it).
type TableCase = (
    &'static str,
    &'static str,
    &'static str,
    u64,
    u64,
    &'static str,
);

/// Every row of a chapter-6 table is one training run with the row's recipe (method and SPAT α,
/// checked against the thesis text in tests/paper.rs), evaluated under the table's columns, its
/// last and its best checkpoint each.
#[test]
fn full_scale_tables_6_x_train_exactly_the_papers_rows() {
    let cases: [TableCase; 4] = [
        ("table6.1", "cifar10", "wrn-34-10", 90, 128, "8/255"),
        ("table6.2", "cifar100", "wrn-34-10", 90, 128, "8/255"),
        ("table6.3", "cifar10", "wrn-28-10", 200, 256, "0.031"),
        ("table6.4", "stl10", "resnet-18", 200, 32, "8/255"),
    ];
    for (id, dataset, model, epochs, batch, eps) in cases {
        let table = spat_reproduce::paper::table(id).unwrap();
        let p = plan(id, "full");
        let trains = jobs(&p, "train");
        let got: Vec<(String, Option<f64>)> = trains.iter().map(|j| recipe(j)).collect();
        let want: Vec<(String, Option<f64>)> = table
            .rows
            .iter()
            .map(|r| r.recipe.unwrap())
            .map(|r| (r.method.to_string(), r.spat_alpha))
            .collect();
        assert_eq!(got, want, "{id}");
        let attacks: Vec<String> = table
            .columns
            .iter()
            .chain(spat_reproduce::matrix::extra_columns(id))
            .map(|c| {
                c.attack
                    .parse::<spat_spec::AttackSpec>()
                    .unwrap()
                    .to_string()
            })
            .collect();
        for t in &trains {
            assert_eq!(t["dataset"], dataset, "{id}");
            assert_eq!(t["model"], model, "{id}");
            assert_eq!(t["epochs"], epochs, "{id}");
            assert_eq!(t["batch_size"], batch, "{id}");
            assert_eq!(t["eps"], eps, "{id}");
            let step = if id == "table6.3" {
                serde_json::json!("0.007")
            } else {
                Value::Null
            };
            assert_eq!(t["attack_step"], step, "{id}");
            assert!(
                t["train_subset"].is_null(),
                "{id}: full scale trains on the whole training set"
            );
            assert!(
                t["val_subset"].as_u64().unwrap() > 0,
                "{id}: a validation split"
            );
            assert_eq!(t["pseudo_labeled"], id == "table6.3", "{id}");
        }
        let evals = jobs(&p, "eval");
        assert_eq!(evals.len(), 2 * table.rows.len(), "{id}: last and best");
        for (i, e) in evals.iter().enumerate() {
            assert_eq!(strs(&e["attacks"]), attacks);
            assert_eq!(e["eps"], "8/255");
            assert_eq!(e["checkpoint"], ["last", "best"][i % 2]);
            assert!(
                e["test_subset"].is_null(),
                "{id}: full scale evaluates the whole test set"
            );
        }
        assert!(
            p["estimated_hours"].as_f64().unwrap() > 1.0,
            "{id}: a full run costs GPU-hours"
        );
        let settings = p["settings"][id].as_array().unwrap();
        assert!(
            settings.iter().any(|s| s["spat_choice"] == true)
                && settings
                    .iter()
                    .any(|s| s["source"].as_str().unwrap().starts_with("thesis")),
            "{id}: the dry run lists settings with their sources"
        );
    }
}

#[test]
fn full_scale_figures_6_are_resnet_50_alpha_by_eps_grids() {
    for (id, dataset) in [("fig6.1", "cifar10"), ("fig6.2", "cifar100")] {
        let p = plan(id, "full");
        let trains = jobs(&p, "train");
        let mut grid = BTreeSet::new();
        for t in &trains {
            assert_eq!(
                (
                    t["model"].as_str(),
                    t["dataset"].as_str(),
                    t["method"].as_str()
                ),
                (Some("resnet-50"), Some(dataset), Some("madry"))
            );
            let alpha = t["spat_alpha"].as_f64().unwrap_or(0.0);
            let eps = t["eps"].as_str().unwrap().strip_suffix("/255").unwrap();
            grid.insert((
                (eps.parse::<f64>().unwrap() * 10.0) as i64,
                (alpha * 10.0).round() as i64,
            ));
        }
        let want: BTreeSet<(i64, i64)> = [40, 80, 160]
            .iter()
            .flat_map(|&e| [0, 2, 4, 6, 8, 10].map(move |a| (e, a)))
            .collect();
        assert_eq!(
            grid, want,
            "{id}: α ∈ {{0, 0.2, …, 1}} × train ε ∈ {{4, 8, 16}}/255"
        );
        for e in jobs(&p, "eval") {
            assert_eq!(strs(&e["attacks"]), ["clean", "pgd20@eps/10"]);
            assert_eq!(
                e["eps"], "8/255",
                "{id}: evaluated at 8/255 whatever the training ε"
            );
        }
    }
}

#[test]
fn full_scale_chapter_5_uses_a_standard_and_a_madry_model() {
    let t51 = plan("table5.1", "full");
    assert_eq!(
        jobs(&t51, "train")
            .iter()
            .map(|j| recipe(j))
            .collect::<Vec<_>>(),
        [("standard".into(), None)]
    );
    assert_eq!(
        strs(&jobs(&t51, "eval")[0]["attacks"]),
        [
            "clean",
            "pgd20-kl",
            "pgd20-ls:0.01",
            "pgd20-ls:0.001",
            "pgd20-ls:0.0001",
            "pgd20-ls:0.00005",
            "pgd20-ls:0.00001"
        ]
    );
    let t52 = plan("table5.2", "full");
    assert_eq!(
        jobs(&t52, "train")
            .iter()
            .map(|j| recipe(j))
            .collect::<Vec<_>>(),
        [("madry".into(), None)]
    );
    assert_eq!(
        strs(&jobs(&t52, "eval")[0]["attacks"]),
        [
            "clean",
            "pgd20-kl",
            "pgd20-ls:0.1",
            "pgd20-ls:0.2",
            "pgd20-ls:0.3",
            "pgd20-ls:0.4",
            "pgd20-ls:0.5"
        ]
    );
    let f53 = plan("fig5.3", "full");
    assert_eq!(jobs(&f53, "train").len(), 2);
    assert_eq!(jobs(&f53, "sweep").len(), 4, "two models x (last, best)");
    for s in jobs(&f53, "sweep") {
        let alphas: Vec<f64> = s["alphas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_f64().unwrap())
            .collect();
        assert_eq!(alphas.len(), 11);
        assert!(alphas
            .iter()
            .enumerate()
            .all(|(i, a)| (a - i as f64 / 10.0).abs() < 1e-12));
    }
    let f51 = plan("fig5.1", "full");
    let v = jobs(&f51, "visualize")[0];
    assert_eq!(strs(&v["attacks"]), ["cw30"]);
    assert_eq!(v["eps"], serde_json::json!(["32/255", "16/255", "8/255"]));
    let f52 = plan("fig5.2", "full");
    let v = jobs(&f52, "visualize")[0];
    assert_eq!(
        strs(&v["attacks"]),
        ["pgd20", "pgd20-ls:0.2", "pgd20-ls:0.8"]
    );
    assert_eq!(v["eps"], serde_json::json!(["32/255"]));
    let f41 = plan("fig4.1", "full");
    let g = jobs(&f41, "gradients")[0];
    let models: Vec<&str> = g["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[0].as_str().unwrap())
        .collect();
    assert_eq!(models, ["standard", "Madry"]);
    assert_eq!(recipe(&g["models"][1][1]), ("madry".into(), None));
}

#[test]
fn all_shares_training_runs_between_ids() {
    let all = plan("all", "full");
    let names: Vec<&str> = all["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "every cell once");
    // Chapter 5's Madry model is Table 6.1's Madry row: one run serves both.
    let madry: Vec<&&str> = names
        .iter()
        .filter(|n| n.starts_with("train-cifar10-wrn-34-10-madry-eps8"))
        .collect();
    assert_eq!(madry.len(), 1, "{madry:?}");
}

#[test]
fn unknown_id_and_missing_data_are_clear_errors() {
    let out = xtask().args(["reproduce", "table9.9"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown id `table9.9`") && err.contains("table6.1"),
        "{err}"
    );

    let empty = tempfile::tempdir().unwrap();
    for (id, file, fetch) in [
        (
            "table6.2",
            "cifar-100-binary/train.bin",
            "cargo xtask fetch-data cifar100",
        ),
        (
            "table6.4",
            "stl10_binary/train_X.bin",
            "cargo xtask fetch-data stl10",
        ),
        (
            "table6.3",
            "ti_500K_pseudo_labeled.pickle",
            "fetch-data ti500k",
        ),
        (
            "table6.1",
            "cifar-10-batches-bin/data_batch_2.bin",
            "cargo xtask fetch-data cifar10",
        ),
    ] {
        let out = xtask()
            .args(["reproduce", id, "--scale", "short", "--data-dir"])
            .arg(empty.path())
            .args(["--out"])
            .arg(empty.path().join("out"))
            .env("SPAT_BIN", "/nonexistent/spat")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{id}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(file) && err.contains(fetch), "{id}: {err}");
        assert!(
            !empty.path().join("out").exists(),
            "{id}: nothing is written before the data check"
        );
        // A dry run still shows the matrix.
        ok(xtask()
            .args([
                "reproduce",
                id,
                "--scale",
                "full",
                "--dry-run",
                "--data-dir",
            ])
            .arg(empty.path())
            .output()
            .unwrap());
    }
}

#[test]
fn table_report_has_every_paper_row_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let spat = fake_spat(tmp.path());
    let out = tmp.path().join("t61");
    let run = || {
        ok(xtask()
            .args(["reproduce", "table6.1", "--scale", "smoke", "--out"])
            .arg(&out)
            .env("SPAT_BIN", &spat)
            .output()
            .unwrap())
    };
    // A training run killed mid-way: config.json present, no DONE marker -> resumed, not restarted.
    let plan = plan("table6.1", "smoke");
    let first_train = plan["cells"][0]["name"].as_str().unwrap().to_string();
    fs::create_dir_all(out.join("runs").join(&first_train)).unwrap();
    fs::write(
        out.join("runs").join(&first_train).join("config.json"),
        "{}",
    )
    .unwrap();
    run();
    let c = calls(tmp.path());
    assert_eq!(c.len(), 15, "5 trainings + 5 x 2 evaluations: {c:#?}");
    assert!(
        c[0].starts_with("train --resume") && c[0].contains(&first_train),
        "{}",
        c[0]
    );
    assert!(
        c[1].starts_with("train --dataset cifar10") && c[1].contains("--model tiny"),
        "{}",
        c[1]
    );
    assert!(
        c[5].starts_with("eval ")
            && c[5].contains("/model.safetensors")
            && c[5].contains("--attacks clean,fgsm,pgd20,cw30")
            && c[5].contains("--eps 8/255"),
        "{}",
        c[5]
    );
    assert!(c[6].contains("/best.safetensors"), "{}", c[6]);
    assert!(
        c[1].contains("--val-subset 32") && c[1].contains("--eps 8/255"),
        "{}",
        c[1]
    );

    let md = fs::read_to_string(out.join("results.md")).unwrap();
    for row in spat_reproduce::paper::TABLE_6_1.rows {
        let line = md
            .lines()
            .find(|l| l.starts_with(&format!("| {} |", row.label)))
            .unwrap_or_else(|| panic!("row {}:\n{md}", row.label));
        for v in row.values {
            assert!(
                line.contains(&format!("| {v} | 42.50 | 42.50 |")),
                "{}: {line}",
                row.label
            );
        }
    }
    assert!(
        md.contains("NOT comparable"),
        "a smoke report says its numbers are not the paper's"
    );
    assert!(
        md.contains("\"TRADES + SPAT (α = 0.1) beats TRADES under PGD-20\"")
            && md.contains("— not testable at this scale"),
        "{md}"
    );
    assert!(
        md.contains("### spat's choices") && md.contains("| weight decay | 7e-4"),
        "{md}"
    );
    let results: Results =
        serde_json::from_str(&fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let Measured::Table { rows, attacks, .. } = &results.measured else {
        panic!("{results:?}")
    };
    assert_eq!(rows.len(), 5);
    assert_eq!(attacks.len(), 4);
    check_table_curves(&out, &results, &md);
    let mart = &spat_reproduce::paper::TABLE_6_1.rows[2];
    assert_eq!(rows[2].label, mart.label);
    assert_eq!(
        rows[2].paper["PGD-20"],
        spat_reproduce::paper::value(mart.values[2])
    );
    assert_eq!(rows[2].last.values["PGD-20"], 42.5);
    assert!(rows[2].best.eval.ends_with("eval.json"));
    assert_ne!(rows[2].last.eval, rows[2].best.eval);
    assert_eq!(results.claims.len(), 4, "two SPAT rows x two checkpoints");
    assert!(results
        .claims
        .iter()
        .all(|c| c.verdict == Verdict::NotTestableAtThisScale));
    assert!(results.settings.iter().any(|s| s.spat_choice));
    assert_eq!(results.provenance.cells.len(), 15);
    assert!(results.provenance.cells[0].done.command[0] == "train");

    // Everything is finished: a re-run calls spat no more and rewrites the same report.
    run();
    assert_eq!(calls(tmp.path()).len(), 15);
    assert_eq!(fs::read_to_string(out.join("results.md")).unwrap(), md);

    // A finished cell whose output changed since (its marker records the output's checksum) is
    // run again, and only that cell.
    let eval_cell = plan["cells"][5]["name"].as_str().unwrap();
    let eval_json = out.join("runs").join(eval_cell).join("eval.json");
    let good = fs::read(&eval_json).unwrap();
    fs::write(&eval_json, b"{\"examples\": 1}").unwrap();
    run();
    let c = calls(tmp.path());
    assert_eq!(c.len(), 16, "{c:#?}");
    assert_eq!(
        c[15], c[5],
        "the changed evaluation runs again, as it first ran"
    );
    assert_eq!(fs::read(&eval_json).unwrap(), good);
    assert_eq!(fs::read_to_string(out.join("results.md")).unwrap(), md);
}

/// Table 6.1's overlay: linked under the table, a spat PNG of the size its curves are drawn at,
/// and its numbers, one curve per row's run, those of the run's state.json.
fn check_table_curves(out: &Path, results: &Results, md: &str) {
    let Measured::Table { curves, rows, .. } = &results.measured else {
        panic!("{results:?}")
    };
    let png_path = curves.as_ref().expect("the table's curves are drawn");
    assert_eq!(png_path, &out.join("table6.1-curves.png"));
    assert!(
        md.contains("![Table 6.1 (smoke scale): robust accuracy over epochs](table6.1-curves.png)"),
        "{md}"
    );
    assert!(
        md.contains("[table6.1-curves.json](table6.1-curves.json)"),
        "{md}"
    );
    let png = fs::read(png_path).unwrap();
    assert!(spat_report::is_spat_png(&png));
    let drawn: spat_spec::curves::Curves =
        serde_json::from_slice(&fs::read(out.join("table6.1-curves.json")).unwrap()).unwrap();
    let (w, h) = spat_report::curves::size(&drawn);
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    assert_eq!((be(&png[16..20]), be(&png[20..24])), (w, h));
    let curves = &drawn.panels[0].curves;
    assert_eq!(curves.len(), rows.len(), "one curve per row's run");
    let (_, state) = common::stand_in_run();
    for (curve, row) in curves.iter().zip(rows) {
        // The stand-in's runs all share one configuration, so each is also named by its folder.
        let folder = row.run.file_name().unwrap().to_string_lossy();
        assert_eq!(curve.label, format!("Madry [{folder}]"));
        let got: Vec<(usize, f64)> = curve.points.iter().map(|p| (p.epoch, p.value)).collect();
        let want: Vec<(usize, f64)> = state
            .history
            .iter()
            .map(|m| (m.epoch, m.robust_acc))
            .collect();
        assert_eq!(got, want);
        assert_eq!(curve.best_epoch, Some(2));
    }
}

/// A folder that passes the runner's data check for CIFAR-10 (the stand-in spat reads nothing).
fn fake_cifar10(dir: &Path) -> PathBuf {
    let root = dir.join("data");
    let cifar = root.join("cifar-10-batches-bin");
    fs::create_dir_all(&cifar).unwrap();
    for f in spat_spec::Dataset::Cifar10
        .files(spat_spec::Split::Train)
        .iter()
        .chain(spat_spec::Dataset::Cifar10.files(spat_spec::Split::Test))
    {
        fs::write(cifar.join(f), b"").unwrap();
    }
    root
}

#[test]
fn figure_5_3_report_has_a_png_plot_and_tests_the_texts_claims() {
    let tmp = tempfile::tempdir().unwrap();
    let spat = fake_spat(tmp.path());
    let out = tmp.path().join("f53");
    ok(xtask()
        .args(["reproduce", "fig5.3", "--scale", "smoke", "--out"])
        .arg(&out)
        .env("SPAT_BIN", &spat)
        .output()
        .unwrap());
    let png = fs::read(out.join("fig5.3.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let md = fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("| PGD-LS α = 0.5 | 35.00 | 35.00 | 35.00 | 35.00 |"),
        "{md}"
    );
    // Smoke: the claims are computed but not judged.
    assert!(
        md.contains("\"bigger α leads to higher robust accuracy (Standard)\" (§5.2, last checkpoint) — not testable at this scale (non-decreasing over 11 values of α"),
        "{md}"
    );
    let results: Results =
        serde_json::from_str(&fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let Measured::Sweep { models, .. } = &results.measured else {
        panic!("{results:?}")
    };
    assert_eq!(models.len(), 4, "two models x (last, best)");
    assert_eq!(models[0].pgd_ls.len(), 11);

    // Short scale: the same numbers are judged. The stand-in's curves rise with α and end at 60 >
    // clean 50 (both hold); the two models' curves are equal, so the standard model's jump from
    // α = 0 is not larger (does not hold).
    let out = tmp.path().join("f53-short");
    ok(xtask()
        .args(["reproduce", "fig5.3", "--scale", "short", "--data-dir"])
        .arg(fake_cifar10(tmp.path()))
        .arg("--out")
        .arg(&out)
        .args(["--device", "cpu"])
        .env("SPAT_BIN", &spat)
        .output()
        .unwrap());
    let results: Results =
        serde_json::from_str(&fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let verdicts = |needle: &str| -> Vec<Verdict> {
        results
            .claims
            .iter()
            .filter(|c| c.statement.contains(needle))
            .map(|c| c.verdict)
            .collect()
    };
    assert_eq!(verdicts("bigger α"), [Verdict::Holds; 4]);
    assert_eq!(verdicts("higher than the clean"), [Verdict::Holds; 4]);
    assert_eq!(verdicts("differs hugely"), [Verdict::DoesNotHold; 2]);
    let md = fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("preact-resnet-18 in place of wrn-34-10")
            && md.contains("learning-rate drops at epochs 13 and 15"),
        "the short report says what it changed: {md}"
    );
    assert!(
        md.contains("— holds in this run (PGD-LS(1.0) 60.00 vs clean 50.00)"),
        "{md}"
    );
}

#[test]
fn figure_4_1_draws_both_models_gradients() {
    let tmp = tempfile::tempdir().unwrap();
    let spat = fake_spat(tmp.path());
    let out = tmp.path().join("f41");
    ok(xtask()
        .args(["reproduce", "fig4.1", "--scale", "smoke", "--out"])
        .arg(&out)
        .env("SPAT_BIN", &spat)
        .output()
        .unwrap());
    let c = calls(tmp.path());
    let g = c.iter().find(|l| l.starts_with("gradients ")).unwrap();
    assert!(
        g.contains("--checkpoint standard=") && g.contains("--checkpoint Madry="),
        "{g}"
    );
    assert!(out.join("fig4.1.png").is_file());
    let md = fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("## Figure 4.1") && md.contains("input gradient"),
        "{md}"
    );
}

/// What a reproduction writes besides spat's own outputs is checked before anything is created:
/// the user's results.md and results.json in `--out` are refused and kept, a path with a line
/// break is refused before its folder exists, and Slurm counts are bounded (issue 26).
#[test]
fn a_users_files_and_impossible_paths_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let spat = fake_spat(tmp.path());
    let out = tmp.path().join("mine");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("results.md"), "# my own results\n").unwrap();
    fs::write(out.join("results.json"), "{\"mine\": true}\n").unwrap();
    let refused = |args: &[&str], out: &Path| {
        let o = xtask()
            .args(["reproduce", "fig5.3", "--scale", "smoke"])
            .args(args)
            .arg("--out")
            .arg(out)
            .env("SPAT_BIN", &spat)
            .output()
            .unwrap();
        assert!(!o.status.success(), "accepted {args:?} {}", out.display());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let err = refused(&[], &out);
    assert!(
        err.contains("results.") && err.contains("not written by"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(out.join("results.md")).unwrap(),
        "# my own results\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("results.json")).unwrap(),
        "{\"mine\": true}\n"
    );
    assert_eq!(fs::read_dir(&out).unwrap().count(), 2, "nothing added");
    assert!(calls(tmp.path()).is_empty(), "spat ran");
    let broken = tmp.path().join("a\nb");
    for args in [&[][..], &["--slurm", "--print"][..]] {
        let err = refused(args, &broken);
        assert!(err.contains("control character"), "{err}");
        assert!(!broken.exists(), "{args:?} created the folder");
    }
    let err = refused(
        &["--slurm", "--print", "--cpus-per-task", "0"],
        &tmp.path().join("s"),
    );
    assert!(err.contains("--cpus-per-task"), "{err}");
    let err = refused(&["--jobs", "100000"], &tmp.path().join("j"));
    assert!(err.contains("--jobs") && err.contains("limit"), "{err}");
}
