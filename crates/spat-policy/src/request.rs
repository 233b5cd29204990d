//! How a user's request becomes the one [`RunConfig`] of a run: the thesis's settings, then the
//! request's overrides.
//!
//! The L2 threat model (`norm`, spat's extension: the thesis is L∞) keeps every setting of the
//! thesis but the radius: without an ε it trains and evaluates at 0.5 (RobustBench's CIFAR-10 L2
//! radius) with step ε/4 for every method, RST included (its L∞ 0.031 and 0.007 do not carry over
//! to L2); the adversaries are PGD-L2 with the method's loss and start.

use std::path::PathBuf;

use spat_spec::{Dataset, Error, Method, Norm, Precision, PseudoLabeled, Result, RunConfig};

use crate::paper::{paper_config, RST_UNLABELED_FRACTION};

/// What a user asks for; [`RunRequest::configure`] fills in the thesis's settings for the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// Model preset name (`wrn-34-10`, `resnet-18`, ...).
    pub model: String,
    /// The data set trained and evaluated on.
    pub dataset: Dataset,
    /// Folder holding the data set's official files.
    pub data_dir: PathBuf,
    /// The training method (standard, Madry, TRADES, MART; RST through `pseudo_labeled`).
    pub method: Method,
    /// RST's pseudo-labelled set; with TRADES or MART it makes the run RST's.
    pub pseudo_labeled: Option<PathBuf>,
    /// Fraction of each batch from `pseudo_labeled` (default [`RST_UNLABELED_FRACTION`]).
    pub unlabeled_fraction: Option<f64>,
    /// SPAT's label-smoothing α in `[0, 1]` for the training adversary (`None`: the method's own
    /// adversary).
    pub spat_alpha: Option<f64>,
    /// The threat model's norm (L∞ in the thesis).
    pub norm: Norm,
    /// The radius in `norm` (default: the thesis's for L∞, [`Norm::default_eps`] for L2).
    pub eps: Option<f64>,
    /// PGD step of the training adversary (default: the method's; ε/4 when `eps` is given).
    pub attack_step_size: Option<f64>,
    /// Training epochs (default: the method's and data set's).
    pub epochs: Option<usize>,
    /// Images per batch (default: the method's and data set's).
    pub batch_size: Option<usize>,
    /// Initial learning rate (default 0.1).
    pub lr: Option<f64>,
    /// Weight decay (default: the method's and data set's).
    pub weight_decay: Option<f64>,
    /// Train on a seeded subset of this many training images (default: all).
    pub train_subset: Option<usize>,
    /// Hold out this many training images for the per-epoch evaluation and the choice of the
    /// best checkpoint ([`RunConfig::val_subset`]).
    pub val_subset: Option<usize>,
    /// Evaluate on a seeded subset of this many test images, after each epoch and at the end.
    pub test_subset: Option<usize>,
    /// The arithmetic of the run.
    pub precision: Precision,
    /// Seed of every random draw (initialisation, shuffles, augmentation, attack starts).
    pub seed: u64,
}

impl RunRequest {
    /// `method` on `dataset` with `model`, everything else the thesis's.
    pub fn new(
        model: impl Into<String>,
        dataset: Dataset,
        data_dir: impl Into<PathBuf>,
        method: Method,
    ) -> Self {
        Self {
            model: model.into(),
            dataset,
            data_dir: data_dir.into(),
            method,
            pseudo_labeled: None,
            unlabeled_fraction: None,
            spat_alpha: None,
            norm: Norm::Linf,
            eps: None,
            attack_step_size: None,
            epochs: None,
            batch_size: None,
            lr: None,
            weight_decay: None,
            train_subset: None,
            val_subset: None,
            test_subset: None,
            precision: Precision::default(),
            seed: 0,
        }
    }

    /// The run configuration: the thesis's settings for the method and data set, then the
    /// request's overrides; checked with [`RunConfig::validate`].
    pub fn configure(&self) -> Result<RunConfig> {
        if self.unlabeled_fraction.is_some() && self.pseudo_labeled.is_none() {
            return Err(Error::Invalid(
                "an unlabeled fraction needs pseudo-labelled data".into(),
            ));
        }
        let pseudo_labeled = self.pseudo_labeled.clone().map(|path| PseudoLabeled {
            path,
            fraction: self.unlabeled_fraction.unwrap_or(RST_UNLABELED_FRACTION),
        });
        let mut c = paper_config(
            &self.model,
            self.dataset,
            self.data_dir.clone(),
            self.method,
            pseudo_labeled,
        );
        c.spat_alpha = self.spat_alpha;
        c.norm = self.norm;
        let eps = match (self.eps, self.norm) {
            (Some(eps), _) => Some(eps),
            (None, Norm::L2) => Some(Norm::L2.default_eps()),
            (None, Norm::Linf) => None,
        };
        if let Some(eps) = eps {
            c.eps = eps;
            if c.method.is_adversarial() {
                c.attack_step_size = eps / 4.0;
            }
        }
        if let Some(step) = self.attack_step_size {
            if !c.method.is_adversarial() {
                return Err(Error::Invalid(
                    "an attack step size needs an adversarial method".into(),
                ));
            }
            c.attack_step_size = step;
        }
        c.epochs = self.epochs.unwrap_or(c.epochs);
        c.batch_size = self.batch_size.unwrap_or(c.batch_size);
        c.lr = self.lr.unwrap_or(c.lr);
        c.weight_decay = self.weight_decay.unwrap_or(c.weight_decay);
        c.train_subset = self.train_subset;
        c.val_subset = self.val_subset;
        if let Some(n) = self.test_subset {
            c.eval_examples = n;
            c.final_full_eval = false;
        }
        c.precision = self.precision;
        c.seed = self.seed;
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spat_spec::{LrSchedule, Mode};

    fn request(dataset: Dataset, method: Method) -> RunRequest {
        RunRequest::new("tiny", dataset, "data", method)
    }

    #[test]
    fn paper_settings_per_data_set_and_method() {
        let c = request(Dataset::Cifar10, Method::Trades)
            .configure()
            .unwrap();
        assert_eq!((c.epochs, c.batch_size, c.weight_decay), (90, 128, 7e-4));
        assert_eq!(c.schedule.drops(c.epochs), [75, 90]);
        assert!((c.attack_step_size - 2.0 / 255.0).abs() < 1e-12);
        assert_eq!(c.adversary_mode, Mode::Eval);
        for (method, wd) in [
            (Method::Mart, 7e-4),
            (Method::Trades, 2e-4),
            (Method::Madry, 2e-4),
        ] {
            let c = request(Dataset::Cifar100, method).configure().unwrap();
            assert_eq!(c.weight_decay, wd, "{method}");
        }
        let c = request(Dataset::Stl10, Method::Trades).configure().unwrap();
        assert_eq!((c.epochs, c.batch_size), (200, 32));
        assert_eq!(c.schedule.drops(c.epochs), [150, 180]);
        let c = request(Dataset::Cifar10, Method::Madry)
            .configure()
            .unwrap();
        assert_eq!(c.adversary_mode, Mode::Train);
        let c = request(Dataset::Cifar10, Method::Standard)
            .configure()
            .unwrap();
        assert_eq!((c.attack_steps, c.eps), (0, 8.0 / 255.0));
    }

    #[test]
    fn pseudo_labelled_data_brings_rst_settings_and_an_explicit_eps_its_step() {
        for method in [Method::Rst, Method::Trades, Method::Mart] {
            let mut r = request(Dataset::Cifar10, method);
            r.pseudo_labeled = Some("ti.pickle".into());
            let c = r.configure().unwrap();
            assert_eq!((c.batch_size, c.epochs, c.nesterov), (256, 200, true));
            assert_eq!(
                (c.eps, c.attack_step_size, c.weight_decay),
                (0.031, 0.007, 5e-4)
            );
            assert_eq!(c.schedule, LrSchedule::Cosine);
            assert_eq!(c.pseudo_labeled.unwrap().fraction, 0.5);
            r.eps = Some(8.0 / 255.0);
            assert_eq!(r.configure().unwrap().attack_step_size, 2.0 / 255.0);
            r.eps = Some(0.031);
            r.attack_step_size = Some(0.007);
            let c = r.configure().unwrap();
            assert_eq!((c.eps, c.attack_step_size), (0.031, 0.007));
        }
    }

    #[test]
    fn requests_that_name_no_runnable_method_are_refused() {
        let e = request(Dataset::Cifar10, Method::Rst)
            .configure()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--pseudo-labeled") && e.contains("fetch-data ti500k"),
            "{e}"
        );
        for method in [Method::Madry, Method::Standard] {
            let mut r = request(Dataset::Cifar10, method);
            r.pseudo_labeled = Some("ti.pickle".into());
            assert!(r.configure().is_err(), "{method}");
        }
        let mut r = request(Dataset::Cifar10, Method::Standard);
        r.spat_alpha = Some(0.1);
        assert!(r
            .configure()
            .unwrap_err()
            .to_string()
            .contains("adversarial"));
        let mut r = request(Dataset::Cifar10, Method::Madry);
        r.unlabeled_fraction = Some(0.3);
        assert!(r.configure().is_err());
        let mut r = request(Dataset::Cifar10, Method::Standard);
        r.attack_step_size = Some(0.007);
        assert!(r.configure().is_err());
        let mut r = request(Dataset::Cifar10, Method::Madry);
        r.val_subset = Some(0);
        assert!(r.configure().is_err());
    }

    #[test]
    fn l2_runs_take_robustbench_radius_and_old_configs_read_back_as_linf() {
        for method in [Method::Madry, Method::Trades, Method::Mart, Method::Rst] {
            let mut r = request(Dataset::Cifar10, method);
            if method == Method::Rst {
                r.pseudo_labeled = Some("ti.pickle".into());
            }
            r.norm = Norm::L2;
            r.spat_alpha = Some(0.1);
            let c = r.configure().unwrap();
            assert_eq!((c.norm, c.eps, c.attack_step_size), (Norm::L2, 0.5, 0.125));
            let json = serde_json::to_string(&c).unwrap();
            assert!(json.contains(r#""norm":"l2""#), "{json}");
            assert_eq!(serde_json::from_str::<RunConfig>(&json).unwrap(), c);
            // The same run written before norms existed: no `norm`, read back as L∞.
            let old = json.replace(r#","norm":"l2""#, "");
            assert_eq!(
                serde_json::from_str::<RunConfig>(&old).unwrap().norm,
                Norm::Linf
            );
            r.eps = Some(8.0 / 255.0);
            let c = r.configure().unwrap();
            assert_eq!((c.eps, c.attack_step_size), (8.0 / 255.0, 2.0 / 255.0));
        }
        // An L∞ configuration is written as it was before norms existed, so the fingerprint of a
        // run started then is the one its resume computes now.
        let c = request(Dataset::Cifar10, Method::Trades)
            .configure()
            .unwrap();
        assert_eq!(c.norm, Norm::Linf);
        assert!(!serde_json::to_string(&c).unwrap().contains("norm"));
        // A radius is checked in its norm: above 1 is an L2 radius only, and not beyond √3072.
        let mut r = request(Dataset::Cifar10, Method::Madry);
        r.eps = Some(2.0);
        assert!(r.configure().unwrap_err().to_string().contains("[0, 1]"));
        r.norm = Norm::L2;
        assert_eq!(r.configure().unwrap().eps, 2.0);
        r.eps = Some(60.0);
        assert!(r.configure().unwrap_err().to_string().contains("√3072"));
        r.eps = Some(f64::NAN);
        assert!(r.configure().unwrap_err().to_string().contains(">= 0"));
    }

    #[test]
    fn overrides_and_test_subset() {
        let mut r = request(Dataset::Cifar10, Method::Mart);
        r.spat_alpha = Some(0.3);
        r.epochs = Some(3);
        r.test_subset = Some(50);
        r.val_subset = Some(100);
        r.seed = 9;
        let c = r.configure().unwrap();
        assert_eq!((c.spat_alpha, c.epochs, c.seed), (Some(0.3), 3, 9));
        assert_eq!(c.val_subset, Some(100));
        assert_eq!((c.eval_examples, c.final_full_eval), (50, false));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<RunConfig>(&json).unwrap(), c);
    }
}
