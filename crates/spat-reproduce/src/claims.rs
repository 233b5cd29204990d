//! The thesis's qualitative claims as tests on numbers: each function takes a run's measurements
//! and says whether the claim holds on them, with the numbers it rests on. The thesis's own values
//! pass every test (checked below), so a claim that fails in a run fails on spat's numbers, not on
//! how it was read.

use crate::paper;

/// Whether a claim holds, and the numbers that decide it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Whether the numbers bear the claim out.
    pub holds: bool,
    /// The numbers the verdict rests on, in words.
    pub evidence: String,
}

fn f2(x: f64) -> String {
    format!("{x:.2}")
}

/// §5.2, Tables 5.1/5.2: "PGD-LS with α between a and b is similar with PGD-KL": of the tested
/// α, the one whose PGD-LS accuracy is nearest PGD-KL's is one of `stated`.
pub fn kl_like_alpha(kl: f64, ls: &[(f64, f64)], stated: &[f64]) -> Outcome {
    let (alpha, acc) = ls
        .iter()
        .copied()
        .min_by(|a, b| (a.1 - kl).abs().total_cmp(&(b.1 - kl).abs()))
        .expect("a non-empty α grid");
    let holds = stated
        .iter()
        .any(|s| (s - alpha).abs() <= 1e-12 * s.abs().max(1.0));
    Outcome {
        holds,
        evidence: format!(
            "PGD-KL {}; nearest PGD-LS is α = {alpha} at {} (all: {})",
            f2(kl),
            f2(acc),
            ls.iter()
                .map(|(a, v)| format!("α = {a}: {}", f2(*v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Figure 5.3: "bigger α leads to ... higher robust accuracy": PGD-LS accuracy never decreases
/// from one α of the grid to the next.
pub fn rises_with_alpha(ls: &[(f64, f64)]) -> Outcome {
    let drops: Vec<String> = ls
        .windows(2)
        .filter(|w| w[1].1 < w[0].1)
        .map(|w| {
            format!(
                "α = {} → {}: {} → {}",
                w[0].0,
                w[1].0,
                f2(w[0].1),
                f2(w[1].1)
            )
        })
        .collect();
    Outcome {
        holds: drops.is_empty(),
        evidence: if drops.is_empty() {
            format!(
                "non-decreasing over {} values of α, {} at α = {} to {} at α = {}",
                ls.len(),
                f2(ls[0].1),
                ls[0].0,
                f2(ls[ls.len() - 1].1),
                ls[ls.len() - 1].0
            )
        } else {
            format!("decreases at {}", drops.join("; "))
        },
    }
}

/// Figure 5.3: "when α is 1.0, accuracy under attacks get higher than accuracy for clean
/// examples".
pub fn above_clean_at_alpha_one(at_one: f64, clean: f64) -> Outcome {
    Outcome {
        holds: at_one > clean,
        evidence: format!("PGD-LS(1.0) {} vs clean {}", f2(at_one), f2(clean)),
    }
}

/// Figure 5.3: "On a standard model, α = 0 shows huge difference from other PGD-LS. In contrast,
/// on adversarially trained model, PGD-LS shows gradual changes": the rise from α = 0 to the next
/// α is larger on the standard model than on the adversarially trained one.
pub fn standard_jumps_more(standard: (f64, f64), robust: (f64, f64)) -> Outcome {
    let (js, jr) = (standard.1 - standard.0, robust.1 - robust.0);
    Outcome {
        holds: js > jr,
        evidence: format!(
            "PGD-LS(0.1) − PGD-LS(0): standard {} points, adversarially trained {} points",
            f2(js),
            f2(jr)
        ),
    }
}

/// The α with the highest robust accuracy among `points` (α, robust); ties go to the smaller α.
fn peak(points: &[(f64, f64)]) -> (f64, f64) {
    points
        .iter()
        .copied()
        .fold(None, |best: Option<(f64, f64)>, p| match best {
            Some(b) if b.1 >= p.1 => Some(b),
            _ => Some(p),
        })
        .expect("a non-empty α grid")
}

/// §6.2: "the peak α value is higher on bigger ε-ball": over the training radii in increasing
/// order, the α of peak robust accuracy never decreases and is higher at the largest radius than
/// at the smallest. `grid` is (training ε, [(α, robust accuracy)]).
pub fn best_alpha_grows_with_eps(grid: &[(f64, Vec<(f64, f64)>)]) -> Outcome {
    let peaks: Vec<(f64, (f64, f64))> = grid.iter().map(|(e, pts)| (*e, peak(pts))).collect();
    let alphas: Vec<f64> = peaks.iter().map(|p| p.1 .0).collect();
    let monotone = alphas.windows(2).all(|w| w[1] >= w[0]);
    let grows = alphas.last() > alphas.first();
    Outcome {
        holds: monotone && grows,
        evidence: peaks
            .iter()
            .map(|(e, (a, r))| format!("ε = {e}/255: peak at α = {a} ({})", f2(*r)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// §6.2: "higher robust accuracy is achieved with middle sized ε-ball": the best robust accuracy
/// over α is higher for the middle training radius than for each other one.
pub fn middle_eps_most_robust(grid: &[(f64, Vec<(f64, f64)>)]) -> Outcome {
    let best: Vec<(f64, f64)> = grid.iter().map(|(e, pts)| (*e, peak(pts).1)).collect();
    let mid = best.len() / 2;
    let holds = best.len() >= 3
        && best
            .iter()
            .enumerate()
            .all(|(i, b)| i == mid || b.1 < best[mid].1);
    Outcome {
        holds,
        evidence: best
            .iter()
            .map(|(e, r)| format!("best over α at ε = {e}/255: {}", f2(*r)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Chapter 6: SPAT "improves PGD-20 accuracy" over its base method: the SPAT row's PGD-20
/// accuracy is higher than the base row's.
pub fn spat_beats_base(spat_label: &str, spat: f64, base_label: &str, base: f64) -> Outcome {
    Outcome {
        holds: spat > base,
        evidence: format!("{spat_label} {} vs {base_label} {}", f2(spat), f2(base)),
    }
}

/// Where each chapter-6 table claims that SPAT beats its base method under PGD-20.
pub fn spat_claim_source(id: &str) -> &'static str {
    match id {
        "table6.1" => "§6.1.1: \"Compared with its original algorithm TRADES, TRADES + SPAT improves on PGD-20 ... MART + SPAT improves on PGD-20 over MART\"",
        "table6.2" => "§6.1.1: on CIFAR-100 \"MART + SPAT outperforms all other methods in all robust accuracy\", \"TRADES + SPAT improves on all robust accuracy over TRADES\"",
        "table6.3" => "§6.1.2: \"SPAT improves PGD-20 accuracy on both RST and MART\"",
        _ => "§6.1.3: \"SPAT again improves PGD-20 accuracy on both TRADES and MART\"",
    }
}

/// The pairs (SPAT row, base row) of a chapter-6 table, by row index.
pub fn spat_pairs(table: &paper::Table) -> Vec<(usize, usize)> {
    table
        .rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let recipe = r.recipe?;
            recipe.spat_alpha?;
            let base = table.rows.iter().position(|b| {
                b.recipe
                    .is_some_and(|b| b.method == recipe.method && b.spat_alpha.is_none())
            })?;
            Some((i, base))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paper::{value, TABLES};

    fn alpha_of(header: &str) -> f64 {
        header.rsplit('=').next().unwrap().parse().unwrap()
    }

    #[test]
    fn the_thesis_numbers_pass_its_own_claims() {
        for (table, stated) in [
            (&paper::TABLE_5_1, paper::TABLE_5_1_KL_LIKE_ALPHAS),
            (&paper::TABLE_5_2, paper::TABLE_5_2_KL_LIKE_ALPHAS),
        ] {
            let v = table.rows[0].values;
            let ls: Vec<(f64, f64)> = table.columns[1..]
                .iter()
                .zip(&v[1..])
                .map(|(c, x)| (alpha_of(c.header), value(x)))
                .collect();
            let o = kl_like_alpha(value(v[0]), &ls, stated);
            assert!(o.holds, "{}: {}", table.id, o.evidence);
        }
        for table in &TABLES[2..] {
            let pgd = table
                .columns
                .iter()
                .position(|c| c.header == "PGD-20")
                .unwrap();
            let pairs = spat_pairs(table);
            assert_eq!(pairs.len(), 2, "{}", table.id);
            for (s, b) in pairs {
                let (s, b) = (&table.rows[s], &table.rows[b]);
                let o =
                    spat_beats_base(s.label, value(s.values[pgd]), b.label, value(b.values[pgd]));
                assert!(o.holds, "{}: {}", table.id, o.evidence);
            }
        }
        // Figure 6.1's stated peaks (§6.2) with the middle radius the most robust.
        let grid: Vec<(f64, Vec<(f64, f64)>)> = paper::FIG_6_1_PEAK_ALPHA
            .iter()
            .map(|&(e, a)| {
                let top = if e == 8.0 { 50.0 } else { 45.0 };
                (
                    e,
                    [0.0, 0.2, 0.4, 0.6]
                        .iter()
                        .map(|&x| (x, if x == a { top } else { 40.0 }))
                        .collect(),
                )
            })
            .collect();
        assert!(best_alpha_grows_with_eps(&grid).holds);
        assert!(middle_eps_most_robust(&grid).holds);
    }

    #[test]
    fn claims_fail_on_numbers_that_contradict_them() {
        let ls = [(1e-4, 60.0), (5e-5, 55.0), (1e-3, 48.0)];
        assert!(!kl_like_alpha(47.5, &ls, &[1e-4, 5e-5]).holds);
        let o = rises_with_alpha(&[(0.0, 10.0), (0.5, 30.0), (1.0, 29.0)]);
        assert!(
            !o.holds && o.evidence.contains("α = 0.5 → 1"),
            "{}",
            o.evidence
        );
        assert!(rises_with_alpha(&[(0.0, 10.0), (0.5, 10.0), (1.0, 29.0)]).holds);
        assert!(!above_clean_at_alpha_one(50.0, 50.0).holds);
        assert!(!standard_jumps_more((10.0, 12.0), (40.0, 45.0)).holds);
        let flat: Vec<(f64, Vec<(f64, f64)>)> = [4.0, 8.0, 16.0]
            .iter()
            .map(|&e| (e, vec![(0.0, 50.0), (0.2, 40.0)]))
            .collect();
        assert!(
            !best_alpha_grows_with_eps(&flat).holds,
            "the peak must move"
        );
        assert!(!middle_eps_most_robust(&flat).holds, "ties are not 'best'");
        assert!(!spat_beats_base("a", 50.0, "b", 50.0).holds);
    }
}
