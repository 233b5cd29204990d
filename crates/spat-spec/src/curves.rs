//! Training curves: which per-epoch number a curve follows ([`EpochMetric`]) and the schema of the
//! JSON written beside every curves picture ([`Curves`]: a run's `curves.json`, the file beside
//! `spat plot --out`, the reproduction's and the search's overlays). The JSON holds exactly the
//! numbers the picture draws, so a reader (or a test) can check them against `metrics.jsonl`.

use std::fmt;
use std::str::FromStr;

use crate::run::EpochMetrics;
use crate::Error;

/// A number every committed epoch records ([`EpochMetrics`]), as a curve over epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EpochMetric {
    /// Mean training loss of the epoch (the method's outer objective).
    Loss,
    /// Clean accuracy on the per-epoch evaluation set.
    CleanAcc,
    /// Accuracy under the run's evaluation attack on the per-epoch evaluation set.
    RobustAcc,
    /// The learning rate the epoch ran at.
    Lr,
}

impl EpochMetric {
    /// Every metric, in the order `spat plot --help` lists them.
    pub const ALL: [EpochMetric; 4] = [
        EpochMetric::Loss,
        EpochMetric::CleanAcc,
        EpochMetric::RobustAcc,
        EpochMetric::Lr,
    ];

    /// The name `spat plot --metric` takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            EpochMetric::Loss => "loss",
            EpochMetric::CleanAcc => "clean-acc",
            EpochMetric::RobustAcc => "robust-acc",
            EpochMetric::Lr => "lr",
        }
    }

    /// This metric's value in `m`.
    pub fn of(self, m: &EpochMetrics) -> f64 {
        match self {
            EpochMetric::Loss => m.loss,
            EpochMetric::CleanAcc => m.clean_acc,
            EpochMetric::RobustAcc => m.robust_acc,
            EpochMetric::Lr => m.lr,
        }
    }

    /// The y-axis label, with the unit: losses are means of natural-log cross-entropies (and
    /// KL divergences), so nats.
    pub const fn axis(self) -> &'static str {
        match self {
            EpochMetric::Loss => "training loss (nats)",
            EpochMetric::CleanAcc | EpochMetric::RobustAcc => "accuracy (%)",
            EpochMetric::Lr => "learning rate",
        }
    }
}

impl fmt::Display for EpochMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EpochMetric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        EpochMetric::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown metric `{s}`; expected loss, clean-acc, robust-acc or lr"
                ))
            })
    }
}

/// A curves picture's numbers: panels stacked over one epoch axis.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Curves {
    /// The picture's title (a run's name, or the metric of an overlay).
    pub title: String,
    /// One line under the title saying what was measured on what.
    pub subtitle: String,
    /// The epoch axis runs from 1 to this (the epochs planned, so that a run stopped early ends
    /// visibly before the right edge).
    pub epochs: usize,
    /// The epoch a vertical line marks across every panel (a run's best epoch), if any.
    pub marked_epoch: Option<usize>,
    /// Whether a curve that ends before its planned epochs gets an X where it ends: in an
    /// overlay, where a search stopped a trial or a run was killed; not in a run's own picture,
    /// which grows by an epoch at each commit.
    pub mark_stops: bool,
    /// The panels, top to bottom.
    pub panels: Vec<CurvePanel>,
}

/// One panel: curves of the same unit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CurvePanel {
    /// The y-axis label, with its unit.
    pub axis: String,
    /// A logarithmic y axis (a learning rate divided by 10 at each drop).
    pub log_scale: bool,
    /// The curves drawn in the panel.
    pub curves: Vec<Curve>,
}

/// One curve: a metric of one run over its committed epochs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Curve {
    /// The legend's label (a run's method and α, or the metric).
    pub label: String,
    /// The metric the curve shows.
    pub metric: EpochMetric,
    /// In epoch order, one per committed epoch.
    pub points: Vec<CurvePoint>,
    /// The run's best epoch, marked on the curve.
    pub best_epoch: Option<usize>,
    /// The epochs the run was to train: a curve that ends before them was stopped there.
    pub epochs_planned: usize,
}

/// One epoch's value.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CurvePoint {
    /// 1-based epoch number.
    pub epoch: usize,
    /// The metric's value after that epoch (percent for accuracies).
    pub value: f64,
}

impl Curve {
    /// The curve of `metric` over `history` (a run's committed epochs).
    pub fn of_history(
        label: impl Into<String>,
        metric: EpochMetric,
        history: &[EpochMetrics],
        best_epoch: Option<usize>,
        epochs_planned: usize,
    ) -> Self {
        Curve {
            label: label.into(),
            metric,
            points: history
                .iter()
                .map(|m| CurvePoint {
                    epoch: m.epoch,
                    value: metric.of(m),
                })
                .collect(),
            best_epoch,
            epochs_planned,
        }
    }

    /// The epoch it stopped at, if it ends before the epochs planned.
    pub fn stopped_at(&self) -> Option<usize> {
        let last = self.points.last().map_or(0, |p| p.epoch);
        (last < self.epochs_planned).then_some(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_parse_by_name_and_read_their_field() {
        let m = EpochMetrics {
            epoch: 3,
            loss: 1.5,
            clean_acc: 40.0,
            robust_acc: 20.0,
            lr: 0.01,
            images_per_sec: 9.0,
            seconds: 2.0,
            eval_examples: 32,
        };
        let values: Vec<f64> = EpochMetric::ALL.iter().map(|k| k.of(&m)).collect();
        assert_eq!(values, [1.5, 40.0, 20.0, 0.01]);
        for k in EpochMetric::ALL {
            assert_eq!(k.as_str().parse::<EpochMetric>().unwrap(), k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{k}\""));
        }
        let e = "accuracy".parse::<EpochMetric>().unwrap_err().to_string();
        assert!(e.contains("robust-acc"), "{e}");
    }

    #[test]
    fn a_curve_that_ends_before_its_planned_epochs_was_stopped() {
        let m = |epoch| EpochMetrics {
            epoch,
            loss: 1.0,
            clean_acc: 1.0,
            robust_acc: epoch as f64,
            lr: 0.1,
            images_per_sec: 1.0,
            seconds: 1.0,
            eval_examples: 1,
        };
        let history = [m(1), m(2)];
        let c = Curve::of_history("a", EpochMetric::RobustAcc, &history, Some(2), 5);
        assert_eq!(c.stopped_at(), Some(2));
        assert_eq!(
            c.points[1],
            CurvePoint {
                epoch: 2,
                value: 2.0
            }
        );
        let full = Curve::of_history("a", EpochMetric::RobustAcc, &history, Some(2), 2);
        assert_eq!(full.stopped_at(), None);
    }
}
