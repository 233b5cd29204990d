//! The adversary a run trains against, described without any ML code: spat-train builds
//! spat-attacks' PGD from it, and the reproduction's listing of settings describes it.

use spat_spec::{AttackLoss, Method, Mode, Norm, RandomStart, RunConfig};

use crate::paper::PaperSettings;

/// A PGD training adversary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingAdversary {
    /// L∞ radius in `[0, 1]` pixel units (8/255 in the thesis).
    pub eps: f64,
    /// PGD step size in pixel units (ε/4 in the thesis, 0.007 in RST).
    pub step_size: f64,
    /// PGD iterations (10 in the thesis).
    pub steps: usize,
    /// SPAT's label-smoothed cross-entropy when the run has `spat_alpha`; else TRADES' KL for
    /// TRADES' objective (RST's too), cross-entropy for Madry's and MART's.
    pub loss: AttackLoss,
    /// Where PGD starts: a uniform or small Gaussian point around the image, as the method's
    /// reference does.
    pub random_start: RandomStart,
    /// How the model runs while the adversary is crafted ([`RunConfig::adversary_mode`]).
    pub mode: Mode,
    /// The run's norm: in L2 the adversary is PGD-L2 (normalised-gradient steps, whatever the
    /// loss; its uniform start a random direction at a radius uniform in `[0, ε]`).
    pub norm: Norm,
}

/// The adversary of `config`; `None` for standard training.
pub fn training_adversary(config: &RunConfig) -> Option<TrainingAdversary> {
    let loss = match (config.spat_alpha, config.method.objective()) {
        (_, Method::Standard) => return None,
        (Some(alpha), _) => AttackLoss::LabelSmoothed { alpha },
        (None, Method::Trades) => AttackLoss::Kl,
        (None, _) => AttackLoss::CrossEntropy,
    };
    let start = PaperSettings::of_config(config).adversary_start.value;
    Some(TrainingAdversary {
        eps: config.eps,
        step_size: config.attack_step_size,
        steps: config.attack_steps,
        loss,
        random_start: start.random_start,
        mode: config.adversary_mode,
        norm: config.norm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunRequest;
    use spat_spec::Dataset;

    fn adversary(method: Method, alpha: Option<f64>, pseudo: bool) -> Option<TrainingAdversary> {
        let mut r = RunRequest::new("tiny", Dataset::Cifar10, "data", method);
        r.spat_alpha = alpha;
        if pseudo {
            r.pseudo_labeled = Some("ti.pickle".into());
        }
        training_adversary(&r.configure().unwrap())
    }

    #[test]
    fn each_method_trains_against_its_references_adversary() {
        assert_eq!(adversary(Method::Standard, None, false), None);
        // Madry (Rice et al.): uniform start, batch norm in train mode, cross-entropy.
        let a = adversary(Method::Madry, None, false).unwrap();
        assert_eq!(
            (a.loss, a.random_start, a.mode),
            (AttackLoss::CrossEntropy, RandomStart::Uniform, Mode::Train)
        );
        assert_eq!((a.steps, a.step_size), (10, 2.0 / 255.0));
        // TRADES and MART: x + 0.001·N(0, 1) in eval mode; KL for TRADES, CE for MART.
        let gaussian = RandomStart::Gaussian { std: 0.001 };
        let a = adversary(Method::Trades, None, false).unwrap();
        assert_eq!(
            (a.loss, a.random_start, a.mode),
            (AttackLoss::Kl, gaussian, Mode::Eval)
        );
        let a = adversary(Method::Mart, None, false).unwrap();
        assert_eq!(
            (a.loss, a.random_start, a.mode),
            (AttackLoss::CrossEntropy, gaussian, Mode::Eval)
        );
        // RST: TRADES' adversary at its own radius and step.
        let a = adversary(Method::Rst, None, true).unwrap();
        assert_eq!((a.loss, a.random_start), (AttackLoss::Kl, gaussian));
        assert_eq!((a.eps, a.step_size), (0.031, 0.007));
    }

    #[test]
    fn l2_runs_train_against_l2_adversaries() {
        for (method, pseudo) in [
            (Method::Madry, false),
            (Method::Trades, false),
            (Method::Mart, false),
            (Method::Trades, true),
        ] {
            for alpha in [None, Some(0.1)] {
                let mut r = RunRequest::new("tiny", Dataset::Cifar10, "data", method);
                r.spat_alpha = alpha;
                r.norm = Norm::L2;
                if pseudo {
                    r.pseudo_labeled = Some("ti.pickle".into());
                }
                let a = training_adversary(&r.configure().unwrap()).unwrap();
                assert_eq!(a.norm, Norm::L2, "{method} {alpha:?}");
                assert_eq!((a.eps, a.step_size), (0.5, 0.125), "{method} {alpha:?}");
                // Only the norm and the radius change: loss, start and mode are the L∞ run's.
                let linf = adversary(method, alpha, pseudo).unwrap();
                assert_eq!(
                    (a.loss, a.random_start, a.mode),
                    (linf.loss, linf.random_start, linf.mode)
                );
            }
        }
    }

    #[test]
    fn spat_changes_only_the_loss() {
        for method in [Method::Madry, Method::Trades, Method::Mart] {
            let plain = adversary(method, None, false).unwrap();
            let spat = adversary(method, Some(0.3), false).unwrap();
            assert_eq!(spat.loss, AttackLoss::LabelSmoothed { alpha: 0.3 });
            assert_eq!(
                TrainingAdversary {
                    loss: plain.loss,
                    ..spat
                },
                plain,
                "{method}"
            );
        }
    }
}
