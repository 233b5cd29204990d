//! numpy arrays as a pickle describes them (`_reconstruct` + `BUILD`, or protocol 5's
//! `_frombuffer`), with their data borrowed from the input.

use crate::machine::Bytes;

/// A numpy element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NpDtype {
    /// numpy kind character: b'u', b'i', b'b' (bool) or b'f'.
    pub kind: u8,
    /// Bytes per element (1, 2, 4 or 8).
    pub size: usize,
    /// Byte order of the data (`>` in the descriptor).
    pub big_endian: bool,
}

impl NpDtype {
    /// A dtype descriptor such as `u1`, `i8`, `f4`, `b1`.
    pub fn parse(descr: &str) -> Option<NpDtype> {
        let b = descr.as_bytes();
        let kind = *b.first()?;
        let size: usize = descr.get(1..)?.parse().ok()?;
        let ok = match kind {
            b'u' | b'i' => matches!(size, 1 | 2 | 4 | 8),
            b'b' => size == 1,
            b'f' => matches!(size, 2 | 4 | 8),
            _ => false,
        };
        ok.then_some(NpDtype {
            kind,
            size,
            big_endian: false,
        })
    }

    /// numpy's name of the type (`uint8`, `float32`, `bool`).
    pub fn name(&self) -> String {
        let kind = match self.kind {
            b'u' => "uint",
            b'i' => "int",
            b'b' => return "bool".into(),
            _ => "float",
        };
        format!("{kind}{}", self.size * 8)
    }

    fn little_endian(&self, raw: &[u8]) -> [u8; 8] {
        let mut buf = [0u8; 8];
        let n = raw.len().min(8);
        if self.big_endian {
            for (i, &b) in raw[..n].iter().rev().enumerate() {
                buf[i] = b;
            }
        } else {
            buf[..n].copy_from_slice(&raw[..n]);
        }
        buf
    }

    /// One element of an integer (or bool) dtype as an `i64`. A `uint64` above `i64::MAX`
    /// wraps negative.
    pub fn integer(&self, raw: &[u8]) -> i64 {
        let mut buf = self.little_endian(raw);
        let n = self.size.clamp(1, 8);
        if self.kind == b'i' && buf[n - 1] & 0x80 != 0 {
            for b in &mut buf[n..] {
                *b = 0xff;
            }
        }
        i64::from_le_bytes(buf)
    }

    /// One element of a float dtype (`f2`, `f4`, `f8`) as an `f64`.
    pub fn float(&self, raw: &[u8]) -> f64 {
        let buf = self.little_endian(raw);
        match self.size {
            2 => f16_to_f64(u16::from_le_bytes([buf[0], buf[1]])),
            4 => f32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as f64,
            _ => f64::from_le_bytes(buf),
        }
    }
}

/// IEEE half precision to double.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// A numpy array whose data is a slice of the input (or, in protocol 2, the bytes decoded
/// from its latin-1 string).
#[derive(Debug, Clone)]
pub struct NumpyArray<'a> {
    /// Element type.
    pub dtype: NpDtype,
    /// Size of each dimension.
    pub shape: Vec<usize>,
    /// Column-major (Fortran) order of the data instead of row-major.
    pub fortran: bool,
    data: Bytes<'a>,
}

impl<'a> NumpyArray<'a> {
    pub(crate) fn new(
        dtype: NpDtype,
        shape: Vec<usize>,
        fortran: bool,
        data: Bytes<'a>,
    ) -> Result<Self, String> {
        let expected = shape
            .iter()
            .try_fold(dtype.size, |acc, &d| acc.checked_mul(d));
        if expected != Some(data.as_slice().len()) {
            return Err(format!(
                "array of shape {shape:?} and type {} needs {} bytes but holds {}",
                dtype.name(),
                expected.map_or("too many".to_string(), |e| e.to_string()),
                data.as_slice().len()
            ));
        }
        Ok(Self {
            dtype,
            shape,
            fortran,
            data,
        })
    }

    /// The elements' bytes, in the array's order.
    pub fn data(&self) -> &[u8] {
        self.data.as_slice()
    }

    /// Elements as integers (for integer and bool dtypes).
    pub fn integers(&self) -> Vec<i64> {
        self.data()
            .chunks_exact(self.dtype.size)
            .map(|c| self.dtype.integer(c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_of_every_width_and_byte_order() {
        let d = |kind, size, big_endian| NpDtype {
            kind,
            size,
            big_endian,
        };
        assert_eq!(d(b'i', 1, false).integer(&[0xff]), -1);
        assert_eq!(d(b'u', 1, false).integer(&[0xff]), 255);
        assert_eq!(d(b'i', 2, true).integer(&[0x01, 0x02]), 0x0102);
        assert_eq!(d(b'i', 4, false).integer(&[0xfe, 0xff, 0xff, 0xff]), -2);
        assert_eq!(d(b'i', 8, false).integer(&7i64.to_le_bytes()), 7);
        assert_eq!(d(b'f', 8, false).float(&2.5f64.to_le_bytes()), 2.5);
        assert_eq!(d(b'f', 4, true).float(&1.5f32.to_be_bytes()), 1.5);
        assert_eq!(d(b'f', 2, false).float(&[0x00, 0x3c]), 1.0);
        assert_eq!(d(b'f', 2, false).float(&[0x00, 0xc0]), -2.0);
        assert_eq!(NpDtype::parse("u1").unwrap().name(), "uint8");
        assert!(NpDtype::parse("O8").is_none() && NpDtype::parse("U5").is_none());
    }
}
