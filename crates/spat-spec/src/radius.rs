//! A radius or step size as it was written: `8/255` or `0.031`.
//!
//! The thesis states its radii as `8/255`, RST's and TRADES' code as `0.031`; the two differ
//! (0.031372… against 0.031), and a report that turned one into the other would mislead a reader
//! comparing it with its source. A [`Radius`] keeps the written form for display and gives the
//! number with [`Radius::value`].

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A length in pixel units of `[0, 1]` images, kept in the form it was written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Radius {
    /// `num/den`, as `8/255`.
    Fraction {
        /// The numerator (`8`).
        num: f64,
        /// The denominator (`255`), > 0.
        den: f64,
    },
    /// A decimal number, as `0.031`.
    Decimal(f64),
}

impl Radius {
    /// `num/255`.
    pub const fn over_255(num: f64) -> Self {
        Radius::Fraction { num, den: 255.0 }
    }

    /// The number the radius stands for.
    pub fn value(&self) -> f64 {
        match *self {
            Radius::Fraction { num, den } => num / den,
            Radius::Decimal(v) => v,
        }
    }

    /// The written form with `/` spelt `over`, for file and directory names (`8` for `8/255`,
    /// `1over64` for `1/64`, `0.031` for `0.031`).
    pub fn file_name(&self) -> String {
        match *self {
            Radius::Fraction { num, den: 255.0 } => format!("{num}"),
            Radius::Fraction { num, den } => format!("{num}over{den}"),
            Radius::Decimal(v) => format!("{v}"),
        }
    }
}

impl fmt::Display for Radius {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Radius::Fraction { num, den } => write!(f, "{num}/{den}"),
            Radius::Decimal(v) => write!(f, "{v}"),
        }
    }
}

impl FromStr for Radius {
    type Err = Error;

    /// `8/255` or `0.031`; the value must be finite and lie in `[0, 1]` (images are in `[0, 1]`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Invalid(format!("bad radius `{s}`: {why}"));
        let number = |t: &str| -> Result<f64, Error> {
            t.trim()
                .parse::<f64>()
                .map_err(|_| bad("expected e.g. 8/255 or 0.031"))
        };
        let t = s.trim();
        let r = match t.split_once('/') {
            Some((num, den)) => {
                let (num, den) = (number(num)?, number(den)?);
                if den == 0.0 {
                    return Err(bad("division by zero"));
                }
                Radius::Fraction { num, den }
            }
            None => Radius::Decimal(number(t)?),
        };
        let v = r.value();
        if !v.is_finite() || !(0.0..=1.0).contains(&v) {
            return Err(bad("must lie in [0, 1] (images are in [0, 1])"));
        }
        Ok(r)
    }
}

impl serde::Serialize for Radius {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Radius {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radii_keep_their_written_form() {
        for (text, shown, value) in [
            ("8/255", "8/255", 8.0 / 255.0),
            (" 0.031 ", "0.031", 0.031),
            ("16/255", "16/255", 16.0 / 255.0),
            ("0.5/255", "0.5/255", 0.5 / 255.0),
            ("1", "1", 1.0),
        ] {
            let r: Radius = text.parse().unwrap();
            assert_eq!(r.to_string(), shown);
            assert_eq!(r.value(), value);
            assert_eq!(shown.parse::<Radius>().unwrap(), r);
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{shown}\""));
            assert_eq!(serde_json::from_str::<Radius>(&json).unwrap(), r);
        }
        assert_ne!(Radius::over_255(8.0).value(), 0.031);
        assert_eq!(Radius::over_255(8.0).file_name(), "8");
        assert_eq!(Radius::Decimal(0.031).file_name(), "0.031");
        assert_eq!("1/64".parse::<Radius>().unwrap().file_name(), "1over64");
    }

    #[test]
    fn bad_radii_are_refused_by_name() {
        for (text, why) in [
            ("8/0", "division by zero"),
            ("x", "expected e.g."),
            ("300/255", "[0, 1]"),
            ("-0.1", "[0, 1]"),
            ("nan", "[0, 1]"),
        ] {
            let e = text.parse::<Radius>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(text), "{text}: {e}");
        }
    }
}
