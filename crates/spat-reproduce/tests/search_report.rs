//! The report of a search (`spat_reproduce::tune::report`): search.md, search.json and
//! search.png from a synthetic search, never written over a file spat did not write.

use std::collections::BTreeMap;
use std::path::Path;

use spat_reproduce::tune::asha::{schedule, Metric, Rungs};
use spat_reproduce::tune::report::{
    self, is_search_json, marks, render, SearchJson, SearchReport, TrialRow, WinnerRow, SCHEMA,
};
use spat_spec::fs::is_marked_text;

const EPS: [(&str, f64); 3] = [
    ("4/255", 4.0 / 255.0),
    ("6/255", 6.0 / 255.0),
    ("8/255", 8.0 / 255.0),
];
const ALPHAS: [f64; 4] = [0.0, 0.1, 0.2, 0.3];

fn trial(id: usize, eps: (&str, f64), alpha: Option<f64>) -> TrialRow {
    TrialRow {
        id,
        name: format!("t{id:02}"),
        eps_text: eps.0.into(),
        eps: eps.1,
        alpha,
    }
}

/// A search over `trials` with metrics from `robust` (clean = robust + 30), run by ASHA on 2
/// slots with every decided segment measured, or only the first `measured` of them.
fn search(
    trials: Vec<TrialRow>,
    robust: impl Fn(usize, usize) -> f64,
    measured: usize,
) -> SearchReport {
    let rungs = Rungs::new(1, 3, 3).unwrap();
    let n = trials.len();
    let full: BTreeMap<(usize, usize), Metric> = (0..n)
        .flat_map(|t| (0..3).map(move |k| (t, k)))
        .map(|(t, k)| {
            (
                (t, k),
                Metric {
                    robust: robust(t, k),
                    clean: robust(t, k) + 30.0,
                },
            )
        })
        .collect();
    let decided = schedule(n, &rungs, 2, &full).arrivals(&full);
    let results: BTreeMap<_, _> = decided
        .iter()
        .take(measured)
        .map(|s| ((s.trial, s.rung), full[&(s.trial, s.rung)]))
        .collect();
    SearchReport {
        title: "TRADES (+SPAT) on cifar10, tiny, smoke".into(),
        objective: "pgd20 at 8/255 (linf) on 1000 validation images".into(),
        rungs,
        slots: 2,
        trials,
        schedule: schedule(n, &rungs, 2, &results),
        results,
        winner: None,
        settings: vec![
            ("--method".into(), "trades".into()),
            ("--jobs".into(), "2".into()),
        ],
    }
}

/// The 3 ε × 4 α grid, robust accuracy rising with ε and the rung and peaking at α = 0.2.
fn grid_search() -> SearchReport {
    let trials = (0..12)
        .map(|id| trial(id, EPS[id / 4], Some(ALPHAS[id % 4])))
        .collect();
    let robust = |t: usize, k: usize| {
        let a = ALPHAS[t % 4];
        30.0 + 4.0 * (t / 4) as f64 - 40.0 * (a - 0.2) * (a - 0.2) + 3.0 * k as f64 + 0.1 * t as f64
    };
    let mut report = search(trials, robust, usize::MAX);
    let best = spat_reproduce::tune::asha::winner(&report.rungs, &report.results).unwrap();
    let acc = |clean, pgd, aa| {
        vec![
            ("clean".into(), clean),
            ("pgd20".into(), pgd),
            ("autoattack".into(), aa),
        ]
    };
    report.winner = Some(WinnerRow {
        trial: best,
        test_images: 1000,
        accuracy: vec![
            ("last".into(), acc(71.5, 40.25, 37.0)),
            ("best".into(), acc(72.0, 41.0, 38.5)),
        ],
    });
    report
}

/// Random samples (not a grid), one without SPAT, half of the decided segments measured.
fn sampled_search() -> SearchReport {
    let points = [
        (0.021, Some(0.05)),
        (0.035, Some(0.42)),
        (0.027, None),
        (0.016, Some(0.3)),
        (0.031, Some(0.17)),
        (0.024, Some(0.55)),
    ];
    let trials = points
        .iter()
        .enumerate()
        .map(|(id, &(eps, alpha))| {
            let text = format!("{:.2}/255", eps * 255.0);
            TrialRow {
                id,
                name: format!("s{id}"),
                eps_text: text,
                eps,
                alpha,
            }
        })
        .collect();
    search(
        trials,
        |t, k| 20.0 + 5.0 * ((t * 7) % 6) as f64 + 2.0 * k as f64,
        6,
    )
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn a_synthetic_search_report_renders_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let r = grid_search();
    report::write(dir.path(), &r).unwrap();
    let md = String::from_utf8(read(&dir.path().join("search.md"))).unwrap();
    assert!(md.starts_with("# TRADES (+SPAT) on cifar10, tiny, smoke\n"));
    let spent: usize = r.schedule.epochs_spent(&r.results).values().sum();
    assert!(spent < 108);
    assert!(
        md.contains(&format!(
            "Epochs trained: {spent}, against the exhaustive grid's 108 (12 trials × 9 epochs)"
        )),
        "{md}"
    );
    assert!(md.contains(
        "| trial | ε | α | rung reached | rung 0 (1 ep) | rung 1 (3 ep) | rung 2 (9 ep) | epochs |"
    ));
    let t0 = &r.results[&(0, 0)];
    assert!(md.contains("| t00 | 4/255 | 0 | "), "{md}");
    assert!(md.contains(&format!("{:.1} / {:.1}", t0.robust, t0.clean)));
    assert!(md.contains("| checkpoint | clean | pgd20 | autoattack |\n| --- | --- | --- | --- |\n| last | 71.5 | 40.2 | 37.0 |\n| best | 72.0 | 41.0 | 38.5 |\n"), "{md}");
    assert!(md.contains("Test set (1000 images)"));
    assert!(md.contains("| --method | trades |"));
    assert!(md.contains("The search is finished."));
    assert!(is_marked_text(md.as_bytes()));

    let json_bytes = read(&dir.path().join("search.json"));
    let json: SearchJson = serde_json::from_slice(&json_bytes).unwrap();
    assert_eq!(json, report::json(&r).unwrap());
    assert_eq!(json.schema, SCHEMA);
    assert_eq!((json.epochs_spent, json.exhaustive_epochs), (spent, 108));
    assert_eq!(json.rung_epochs, [1, 3, 9]);
    let winner = r.winner.as_ref().unwrap().trial;
    assert_eq!(json.trials[winner].rung_reached, Some(2));
    assert_eq!(json.trials[winner].metrics.len(), 3);
    assert_eq!(
        json.winner.as_ref().unwrap().checkpoints[1].accuracy[2].accuracy,
        38.5
    );

    let png = read(&dir.path().join("search.png"));
    assert_eq!(png, render(&r).unwrap().to_png().unwrap());
    // Written again over its own files.
    report::write(dir.path(), &sampled_search()).unwrap();
    let md = String::from_utf8(read(&dir.path().join("search.md"))).unwrap();
    assert!(md.contains("The search is not finished: "), "{md}");
    assert!(md.contains("| s2 | 6.88/255 | none | "), "{md}");
}

#[test]
fn refuses_to_overwrite_a_foreign_search_md_json_or_png() {
    let foreign: [(&str, &[u8]); 3] = [
        ("search.md", b"# my own notes\n"),
        (
            "search.json",
            br#"{"schema": "someone-else/1", "trials": []}"#,
        ),
        ("search.png", b"\x89PNG\r\n\x1a\nnot spat's"),
    ];
    for (name, bytes) in foreign {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), bytes).unwrap();
        let e = report::write(dir.path(), &grid_search())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(name) && e.contains("was not written by this spat command"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        assert_eq!(read(&dir.path().join(name)), bytes);
        let written: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(
            written.len(),
            1,
            "nothing else is written when one output is refused"
        );
    }
}

#[test]
fn the_files_are_recognised_as_spats() {
    let dir = tempfile::tempdir().unwrap();
    report::write(dir.path(), &sampled_search()).unwrap();
    assert!(spat_report::is_spat_png(&read(
        &dir.path().join("search.png")
    )));
    assert!(is_search_json(&read(&dir.path().join("search.json"))));
    assert!(is_marked_text(&read(&dir.path().join("search.md"))));
    assert!(!is_search_json(br#"{"schema": "spat-search/0"}"#));
    assert!(!is_search_json(b"[1, 2]"));
}

/// Perceived lightness of a pixel.
fn luminance([r, g, b]: [u8; 3]) -> f64 {
    0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64
}

/// Samples each trial's colour from the picture and checks that it gets lighter as the robust
/// metric at the trial's highest rung rises.
fn check_colours_follow_the_metric(r: &SearchReport, expected: usize) {
    let canvas = render(r).unwrap();
    let mut seen: Vec<(f64, f64)> = marks(r)
        .unwrap()
        .into_iter()
        .map(|(id, (x, y))| {
            let (_, m) = report::reached(r, id).unwrap();
            (m.robust, luminance(canvas.get(x, y)))
        })
        .collect();
    assert_eq!(seen.len(), expected);
    seen.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in seen.windows(2) {
        assert!(w[0].0 < w[1].0, "the synthetic metrics are distinct");
        assert!(w[0].1 < w[1].1, "{seen:?}");
    }
    let (lo, hi) = (seen[0].1, seen[seen.len() - 1].1);
    assert!(hi - lo > 150.0, "the scale spans dark to light: {lo}..{hi}");
}

#[test]
fn the_heat_maps_colours_are_ordered_with_the_metric() {
    check_colours_follow_the_metric(&grid_search(), 12);
    let sampled = sampled_search();
    let with_result = (0..6)
        .filter(|&t| report::reached(&sampled, t).is_some())
        .count();
    assert!((2..6).contains(&with_result));
    check_colours_follow_the_metric(&sampled, with_result);
    // Random samples stand at their coordinates: α to the right, ε up; no SPAT right of them all.
    let at: BTreeMap<usize, (usize, usize)> = marks(&sampled).unwrap().into_iter().collect();
    for (a, b) in at.keys().flat_map(|a| at.keys().map(move |b| (*a, *b))) {
        let (ta, tb) = (&sampled.trials[a], &sampled.trials[b]);
        let alpha = |t: &TrialRow| t.alpha.unwrap_or(f64::INFINITY);
        assert_eq!(alpha(ta) < alpha(tb), at[&a].0 < at[&b].0, "{ta:?} {tb:?}");
        assert_eq!(ta.eps < tb.eps, at[&a].1 > at[&b].1, "{ta:?} {tb:?}");
    }
}

#[test]
fn a_report_with_unknown_trials_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = grid_search();
    r.trials.swap(1, 2);
    let e = report::write(dir.path(), &r).unwrap_err().to_string();
    assert_eq!(e, "search report: trial row 1 has id 2, not 1");
    let mut r = grid_search();
    r.results.insert(
        (12, 0),
        Metric {
            robust: 1.0,
            clean: 1.0,
        },
    );
    let e = report::write(dir.path(), &r).unwrap_err().to_string();
    assert!(
        e.contains("trial 12 at rung 0, but there are 12 trials"),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
