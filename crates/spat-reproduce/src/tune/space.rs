//! The search space of `cargo xtask tune`: the (ε, α) pairs to try, as a grid or as seeded random
//! draws from ranges, each a [`Trial`] with an id and a directory name.
//!
//! ASHA starts new trials in id order whenever a worker is free, and promotes among the trials
//! that have arrived so far. A grid in its natural order (every α of the smallest ε first) would
//! make the first promotions among one corner of the grid only; the grid is therefore listed in
//! a seeded shuffled order (`--seed`), so every prefix of the trial list is a spread-out sample of
//! the space, and the same seed gives the same order (and the same decisions) on every machine.

use std::fmt;

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use spat_spec::limits::{check_count, LIST};
use spat_spec::Radius;

/// One (ε, α) pair: one training run of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Its place in the order trials are started (0, 1, ...).
    pub id: usize,
    /// The training radius.
    pub eps: Radius,
    /// SPAT's α; `None`: the method's own adversary, no SPAT.
    pub alpha: Option<f64>,
}

impl Trial {
    /// The trial's directory name under `<out>/trials/`: `t03-eps8-a0.1`, `t04-eps6-nospat`.
    pub fn name(&self) -> String {
        let alpha = match self.alpha {
            Some(a) => format!("a{a}"),
            None => "nospat".to_string(),
        };
        format!("t{:02}-eps{}-{alpha}", self.id, self.eps.file_name())
    }
}

/// Values of one option: a list, or a range to draw from (`lo..hi`).
#[derive(Debug, Clone, PartialEq)]
pub enum Values<T> {
    /// Every value, in the order given.
    List(Vec<T>),
    /// Draw uniformly between the two (inclusive).
    Range(T, T),
}

/// `--train-eps`: `4/255,6/255` or `4/255..10/255`; each radius positive.
pub fn parse_eps(text: &str) -> Result<Values<Radius>> {
    let radius = |t: &str| -> Result<Radius> {
        let r: Radius = super::named("--train-eps", t.parse())?;
        ensure!(
            r.value() > 0.0,
            "--train-eps {t}: a training radius must be positive"
        );
        Ok(r)
    };
    if let Some((lo, hi)) = text.split_once("..") {
        let (lo, hi) = (radius(lo)?, radius(hi)?);
        ensure!(
            lo.value() < hi.value(),
            "--train-eps {text}: the range's start must be below its end"
        );
        return Ok(Values::Range(lo, hi));
    }
    let values = list("--train-eps", text, radius)?;
    distinct("--train-eps", &values, |r| r.value())?;
    Ok(Values::List(values))
}

/// `--alpha`: `0,0.1,none` or `0..0.6`; each α in [0, 1]; `none` = no SPAT (lists only).
pub fn parse_alpha(text: &str) -> Result<Values<Option<f64>>> {
    let alpha = |t: &str| -> Result<Option<f64>> {
        let t = t.trim();
        if t == "none" {
            return Ok(None);
        }
        let Some(a) = t.parse::<f64>().ok().filter(|a| a.is_finite()) else {
            bail!("--alpha {t}: expected a number in [0, 1] or `none`");
        };
        ensure!(
            (0.0..=1.0).contains(&a),
            "--alpha {t}: α must lie in [0, 1]"
        );
        Ok(Some(a))
    };
    if let Some((lo, hi)) = text.split_once("..") {
        let (Some(l), Some(h)) = (alpha(lo)?, alpha(hi)?) else {
            bail!("--alpha {text}: a range takes numbers only (`none` goes in a list)");
        };
        ensure!(
            l < h,
            "--alpha {text}: the range's start must be below its end"
        );
        return Ok(Values::Range(Some(l), Some(h)));
    }
    let values = list("--alpha", text, alpha)?;
    distinct("--alpha", &values, |a| a.unwrap_or(-1.0))?;
    Ok(Values::List(values))
}

/// A comma-separated list of at most [`LIST`] values.
fn list<T>(option: &str, text: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    ensure!(
        parts.iter().all(|p| !p.is_empty()),
        "{option} `{text}`: an empty value in the list"
    );
    check_count(option, parts.len(), LIST)?;
    parts.into_iter().map(parse).collect()
}

fn distinct<T: fmt::Debug>(option: &str, values: &[T], key: impl Fn(&T) -> f64) -> Result<()> {
    for (i, v) in values.iter().enumerate() {
        if values[..i].iter().any(|w| key(w) == key(v)) {
            bail!("{option}: {v:?} is listed twice");
        }
    }
    Ok(())
}

/// A small seeded generator (SplitMix64): the same seed gives the same draws everywhere.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

/// The trials of the search: the grid of `eps` × `alpha` in a seeded shuffled order, or
/// `samples` seeded draws when either is a range (a list is then drawn from uniformly).
pub fn trials(
    eps: &Values<Radius>,
    alpha: &Values<Option<f64>>,
    samples: Option<usize>,
    seed: u64,
) -> Result<Vec<Trial>> {
    let mut rng = SplitMix64(seed);
    let ranged = matches!(eps, Values::Range(..)) || matches!(alpha, Values::Range(..));
    let pairs: Vec<(Radius, Option<f64>)> = match (eps, alpha, samples) {
        (Values::List(es), Values::List(al), None) => {
            let mut grid: Vec<_> = es
                .iter()
                .flat_map(|e| al.iter().map(move |a| (*e, *a)))
                .collect();
            check_count("--train-eps × --alpha (trials)", grid.len(), LIST)?;
            // Fisher–Yates.
            for i in (1..grid.len()).rev() {
                grid.swap(i, rng.below(i + 1));
            }
            grid
        }
        (_, _, Some(n)) if ranged => {
            check_count("--samples", n, LIST)?;
            (0..n)
                .map(|_| (draw_eps(eps, &mut rng), draw_alpha(alpha, &mut rng)))
                .collect()
        }
        (_, _, Some(_)) => {
            bail!("--samples draws from ranges: give --alpha or --train-eps as lo..hi")
        }
        _ => bail!("--alpha or --train-eps is a range (lo..hi): give --samples N"),
    };
    Ok(pairs
        .into_iter()
        .enumerate()
        .map(|(id, (eps, alpha))| Trial { id, eps, alpha })
        .collect())
}

/// A radius drawn from `v`: in k/255 steps of 0.01 when both ends are written over 255, else
/// rounded to 1e-4.
fn draw_eps(v: &Values<Radius>, rng: &mut SplitMix64) -> Radius {
    match v {
        Values::List(l) => l[rng.below(l.len())],
        Values::Range(lo, hi) => {
            let u = rng.unit();
            match (lo, hi) {
                (
                    Radius::Fraction { num: a, den: 255.0 },
                    Radius::Fraction { num: b, den: 255.0 },
                ) => Radius::over_255(((a + u * (b - a)) * 100.0).round() / 100.0),
                _ => {
                    let x = lo.value() + u * (hi.value() - lo.value());
                    Radius::Decimal((x * 1e4).round() / 1e4)
                }
            }
        }
    }
}

/// An α drawn from `v`, rounded to 1e-3.
fn draw_alpha(v: &Values<Option<f64>>, rng: &mut SplitMix64) -> Option<f64> {
    match v {
        Values::List(l) => l[rng.below(l.len())],
        Values::Range(lo, hi) => {
            let (lo, hi) = (lo.unwrap_or(0.0), hi.unwrap_or(1.0));
            Some(((lo + rng.unit() * (hi - lo)) * 1e3).round() / 1e3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_is_every_pair_once_in_a_seeded_order() {
        let eps = parse_eps("4/255,6/255,8/255").unwrap();
        let alpha = parse_alpha("0,0.1,none").unwrap();
        let a = trials(&eps, &alpha, None, 1).unwrap();
        let b = trials(&eps, &alpha, None, 1).unwrap();
        let c = trials(&eps, &alpha, None, 2).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c, "another seed, another order");
        let mut pairs: Vec<String> = a
            .iter()
            .map(|t| format!("{} {:?}", t.eps, t.alpha))
            .collect();
        pairs.sort();
        pairs.dedup();
        assert_eq!(pairs.len(), 9);
        assert!(a.iter().enumerate().all(|(i, t)| t.id == i));
        assert_eq!(
            Trial {
                id: 3,
                eps: "8/255".parse().unwrap(),
                alpha: None
            }
            .name(),
            "t03-eps8-nospat"
        );
    }

    #[test]
    fn ranges_are_drawn_within_their_bounds_and_need_samples() {
        let eps = parse_eps("4/255..10/255").unwrap();
        let alpha = parse_alpha("0..0.6").unwrap();
        let t = trials(&eps, &alpha, Some(20), 7).unwrap();
        assert_eq!(t.len(), 20);
        for x in &t {
            assert!(
                (4.0 / 255.0..=10.0 / 255.0).contains(&x.eps.value()),
                "{x:?}"
            );
            assert!((0.0..=0.6).contains(&x.alpha.unwrap()), "{x:?}");
        }
        assert_eq!(t, trials(&eps, &alpha, Some(20), 7).unwrap());
        let e = trials(&eps, &alpha, None, 7).unwrap_err().to_string();
        assert!(e.contains("--samples"), "{e}");
        let list = parse_alpha("0,0.1").unwrap();
        let grid = parse_eps("8/255").unwrap();
        let e = trials(&grid, &list, Some(3), 7).unwrap_err().to_string();
        assert!(e.contains("from ranges"), "{e}");
    }

    #[test]
    fn bad_values_name_the_option() {
        for (text, needle) in [
            ("0,1.5", "must lie in [0, 1]"),
            ("0,,1", "empty value"),
            ("0.1,0.1", "listed twice"),
            ("0.5..0.2", "below its end"),
            ("none..0.5", "numbers only"),
            ("x", "expected a number"),
        ] {
            let e = format!("{:#}", parse_alpha(text).unwrap_err());
            assert!(e.contains("--alpha") && e.contains(needle), "{text}: {e}");
        }
        for (text, needle) in [
            ("0", "positive"),
            ("2", "[0, 1]"),
            ("8/255,8/255", "listed twice"),
        ] {
            let e = format!("{:#}", parse_eps(text).unwrap_err());
            assert!(
                e.contains("--train-eps") && e.contains(needle),
                "{text}: {e}"
            );
        }
    }
}
