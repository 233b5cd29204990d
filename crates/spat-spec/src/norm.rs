//! The norm of a threat model: L∞ (the thesis's, and RobustBench's first leaderboard) or L2
//! (RobustBench's second, at ε = 0.5 on CIFAR).
//!
//! A run has one norm, and every attack of it uses that norm: a radius is one number for the whole
//! run, and a worst case over attacks of different norms would compare balls of different shapes.
//! Attack specs therefore keep their names under L2 (`fgsm` is FGM, the single step along the
//! normalised gradient; `pgd20` is PGD-L2; `autoattack` is AutoAttack's standard version for L2),
//! so `spat eval --json` reports each accuracy under the name given whatever the norm.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The norm in which perturbations are measured.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// `max_i |δ_i|`: signed-gradient steps, projection by clipping.
    #[default]
    Linf,
    /// `(Σ_i δ_i²)^½`: normalised-gradient steps, projection by rescaling.
    L2,
}

impl Norm {
    /// Every norm, in the order `--norm`'s help lists them.
    pub const ALL: [Norm; 2] = [Norm::Linf, Norm::L2];

    /// The name `--norm` takes and reports print: `linf` or `l2`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Norm::Linf => "linf",
            Norm::L2 => "l2",
        }
    }

    /// For `#[serde(skip_serializing_if)]`: a file written before norms existed has no norm and is
    /// L∞, and an L∞ configuration is written without one, so its JSON (and fingerprint) is what
    /// it was.
    pub fn is_linf(&self) -> bool {
        *self == Norm::Linf
    }

    /// The radius used when none is given: 8/255 for L∞ (thesis §6.1), 0.5 for L2 (RobustBench's
    /// CIFAR-10 L2 leaderboard).
    pub fn default_eps(self) -> f64 {
        match self {
            Norm::Linf => 8.0 / 255.0,
            Norm::L2 => 0.5,
        }
    }

    /// Checks a radius (or step) `value` named `what` for images of `features` values in
    /// `[0, 1]`: finite, `>= 0`, and at most the largest distance two such images can have (1 in
    /// L∞, `√features` in L2), beyond which the ball holds every image.
    pub fn check_radius(self, what: &str, value: f64, features: usize) -> Result<(), Error> {
        match self {
            Norm::Linf if !(value.is_finite() && (0.0..=1.0).contains(&value)) => {
                Err(Error::Invalid(format!(
                    "{what} {value}: an L∞ radius must lie in [0, 1] (images are in [0, 1])"
                )))
            }
            Norm::L2 if !(value.is_finite() && value >= 0.0) => Err(Error::Invalid(format!(
                "{what} {value}: an L2 radius must be a finite number >= 0"
            ))),
            Norm::L2 if value > (features as f64).sqrt() => Err(Error::Invalid(format!(
                "{what} {value}: exceeds √{features} ≈ {:.2}, the largest L2 distance between two \
                 images of {features} values in [0, 1] (the ball would hold every image)",
                (features as f64).sqrt()
            ))),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Norm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Norm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "linf" | "l-inf" | "l_inf" | "inf" | "l∞" => Ok(Norm::Linf),
            "l2" | "l_2" => Ok(Norm::L2),
            _ => Err(Error::Invalid(format!(
                "unknown norm `{s}`; expected linf or l2"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norms_parse_print_and_serialise() {
        for n in Norm::ALL {
            assert_eq!(n.as_str().parse::<Norm>().unwrap(), n);
            assert_eq!(serde_json::to_string(&n).unwrap(), format!("\"{n}\""));
        }
        assert_eq!("Linf".parse::<Norm>().unwrap(), Norm::Linf);
        assert_eq!("L2".parse::<Norm>().unwrap(), Norm::L2);
        let e = "l1".parse::<Norm>().unwrap_err().to_string();
        assert!(e.contains("`l1`") && e.contains("linf or l2"), "{e}");
        assert_eq!(Norm::default(), Norm::Linf);
    }

    #[test]
    fn radii_are_checked_for_their_norm() {
        let d = 3 * 32 * 32;
        assert!(Norm::Linf.check_radius("--eps", 8.0 / 255.0, d).is_ok());
        assert!(Norm::L2.check_radius("--eps", 8.0 / 255.0, d).is_ok());
        assert!(Norm::L2.check_radius("--eps", 2.0, d).is_ok());
        assert!(Norm::L2.check_radius("--eps", 0.0, d).is_ok());
        for (norm, v, needle) in [
            (Norm::Linf, 2.0, "[0, 1]"),
            (Norm::Linf, -0.1, "[0, 1]"),
            (Norm::Linf, f64::NAN, "[0, 1]"),
            (Norm::L2, -0.5, ">= 0"),
            (Norm::L2, f64::NAN, ">= 0"),
            (Norm::L2, f64::INFINITY, ">= 0"),
            (Norm::L2, 56.0, "√3072"),
        ] {
            let e = norm.check_radius("--eps", v, d).unwrap_err().to_string();
            assert!(
                e.starts_with("--eps") && e.contains(needle),
                "{norm} {v}: {e}"
            );
        }
    }
}
